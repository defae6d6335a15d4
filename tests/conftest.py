"""Shared fixtures: every async test runs on both anyio backends (asyncio and trio)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ignite_async import Engine, Events


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def record_events(engine: Engine, trace: list[tuple[str, int, int]], events: Any = None) -> None:
    """Append ``(event name, epoch, iteration)`` to ``trace`` at every firing of ``events``.

    EXCEPTION_RAISED is left out by default, because attaching a handler there changes what run() does.
    """
    skip = {"EXCEPTION_RAISED", "TERMINATE_SINGLE_EPOCH"}
    for event in events if events is not None else [e for e in Events if e.name not in skip]:
        engine.add_event_handler(event, _recorder(event.name, trace))


def _recorder(name: str, trace: list[tuple[str, int, int]]) -> Callable[[Engine], None]:
    def record(engine: Engine) -> None:
        trace.append((name, engine.state.epoch, engine.state.iteration))

    return record


@pytest.fixture
def trace() -> list[tuple[str, int, int]]:
    return []


class Clock:
    """A clock the test drives, to monkeypatch in place of time.monotonic or perf_counter."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (a tmpfs), mounted for the test, to fill up; skipped where mounting is refused."""
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(directory: Path) -> None:
    """Write to ``directory`` until its filesystem has not a byte left."""
    with open(directory / "filler", "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)


def checkpoint_files(directory: Path) -> list[str]:
    """The names of the files in ``directory``, but for the lock files by which checkpoint names are claimed."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a real MLflow tracking server on 127.0.0.1, shared by the session's tests."""
    from tests.loggers._mlflow_server import mlflow_server as serve

    with serve(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture
def wandb_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """wandb.init's arguments for an offline run under tmp_path that touches no network and no home directory
    (the run's files under ``dir``; pass another ``dir=`` to put them elsewhere)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # were anything to try the server: refused, locally
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var.lower()))
    # A dict, not a wandb.Settings: wandb.init writes into the Settings object it is given (e.g. its wandb_dir).
    settings = {
        "silent": True,
        "console": "off",
        "x_disable_stats": True,  # no system metrics sampler
        "x_disable_meta": True,
        "x_disable_machine_info": True,
        "x_disable_viewer": True,
        "disable_git": True,
        "disable_code": True,
    }
    return {"mode": "offline", "dir": str(tmp_path), "settings": settings}
