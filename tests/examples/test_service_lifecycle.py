"""The training service's life: served by `uvicorn examples.service:app`, resumed runs, the status while a step
runs, and SIGTERM while clients read event streams. Real uvicorn, in a thread or as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import torch

from tests.examples.test_examples import ROOT, load
from tests.examples.test_service import LONG, events, free_port, run_to_end, running, wait_until_training
from tests.loggers._http_server import serve

pytestmark = pytest.mark.anyio

PREFIX = "IGNITE_ASYNC_SERVICE_"
ENDLESS = {"epochs": 1, "epoch_length": 100_000, "step_delay": 0.005}  # no checkpoint until a cancel


def non_loopback_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


def clean_env(**variables: str) -> dict[str, str]:
    """The environment without the service's variables (a developer's own), plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return {**env, "PYTHONPATH": str(ROOT), **variables}


@asynccontextmanager
async def server_process(command: list[str], env: dict[str, str], log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Start the service as a real process from the repository root; yield it once it answers on its port."""
    port = command[command.index("--port") + 1]
    # A file, not a pipe: nothing reads a pipe while the server runs, and a full one would stop it.
    with log.open("wb") as stderr, subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr) as proc:  # noqa: ASYNC220
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                with anyio.fail_after(60):
                    while True:  # up once it answers; across processes there is no event to wait on
                        try:
                            await client.get("/runs")
                            break
                        except httpx.TransportError:
                            assert proc.poll() is None, log.read_text()  # noqa: ASYNC240 - on failure only
                            await anyio.sleep(0.1)
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def assert_clean_exit(proc: subprocess.Popen[bytes], log: Path) -> str:
    # uvicorn re-raises the signal once it has shut down gracefully, so -SIGTERM is a clean exit too.
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()
    text = log.read_text()
    for sign in ("Exception in ASGI application", "Traceback", "timeout graceful shutdown exceeded", "ERROR"):
        assert sign not in text, text
    return text


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the client's loop; the server is the same either way
async def test_uvicorn_serves_the_module_level_app_configured_by_the_environment(tmp_path: Path) -> None:
    port, runs_dir, log = free_port(), tmp_path / "runs", tmp_path / "stderr.txt"
    env = clean_env(**{f"{PREFIX}RUNS_DIR": str(runs_dir), f"{PREFIX}MAX_RUNNING": "1"})
    # Every interface, without a token: the app itself refuses what does not come over the loopback.
    command = [sys.executable, "-m", "uvicorn", "examples.service:app", "--host", "0.0.0.0", "--port", str(port)]
    async with server_process(command, env, log) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            first = await run_to_end(client, {"epochs": 1, "epoch_length": 2})
            response = await client.post("/runs", json=LONG)
            assert response.status_code == 201
            second = response.json()["id"]
            assert (await client.post("/runs", json=LONG)).status_code == 429  # MAX_RUNNING=1 from the environment
            listed = {run["id"]: run for run in (await client.get("/runs")).json()}
            assert listed.keys() == {first, second}
            assert (listed[first]["status"], listed[first]["iteration"], listed[first]["max_iterations"]) == (
                "completed",
                2,
                2,
            )
            assert (listed[second]["status"], listed[second]["max_epochs"]) == ("running", LONG["epochs"])
            assert (await client.get("/runs", headers={"Host": "evil.example"})).status_code == 400  # DNS rebinding
        if (address := non_loopback_address()) is not None:
            async with httpx.AsyncClient(base_url=f"http://{address}:{port}", timeout=30) as outside:
                response = await outside.get("/runs")
                assert response.status_code == 403
                assert f"{PREFIX}TOKEN" in response.json()["detail"]
        assert list((runs_dir / first).glob("checkpoint_*.pt"))
        proc.send_signal(signal.SIGTERM)
        text = assert_clean_exit(proc, log)
    assert f"runs go to {runs_dir}" in text
    assert "only loopback connections are answered" in text
    assert list((runs_dir / second).glob("checkpoint_*.pt"))  # cancelled by the signal, with a final checkpoint


async def test_the_module_level_app_creates_nothing_until_its_lifespan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs_dir = tmp_path / "not" / "yet"
    for name in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(f"{PREFIX}RUNS_DIR", str(runs_dir))
    monkeypatch.setenv(f"{PREFIX}KEEP_FINISHED", "7")
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    monkeypatch.setenv(f"{PREFIX}TOKEN", "from-the-variable")
    monkeypatch.setenv(f"{PREFIX}TOKEN_FILE", str(token_file))  # the file wins
    service = load("service")
    assert not runs_dir.exists()
    assert service.app.state.registry.keep_finished == 7
    with serve(service.app, path="", lifespan="on") as url:
        assert runs_dir.is_dir()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/runs")).status_code == 401
            assert (await client.get("/runs", headers={"Authorization": "Bearer from-the-variable"})).status_code == 401
            assert (await client.get("/runs", headers={"Authorization": "Bearer from-the-file"})).json() == []
    assert f"runs go to {runs_dir}; every request needs the bearer token from {token_file}" in capsys.readouterr().err
    for name, value in [("MAX_RUNNING", "0"), ("FINISHED_TTL", "soon"), ("TOKEN_FILE", str(tmp_path / "none"))]:
        with pytest.raises(SystemExit) as exit_info:
            service.app_from_env({f"{PREFIX}{name}": value})
        assert (f"{PREFIX}{name}" if name != "TOKEN_FILE" else "none") in str(exit_info.value.code)


async def test_a_completed_run_resumes_from_its_checkpoint_to_more_epochs(tmp_path: Path) -> None:
    config = {"epochs": 2, "epoch_length": 5, "seed": 3, "step_delay": 0.02}
    with running(tmp_path) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            run_id = await run_to_end(client, config)
            assert not (await client.post(f"/runs/{run_id}/resume", json={})).is_success  # nothing left to train
            response = await client.post(f"/runs/{run_id}/resume", json={"epochs": 4})
            assert response.status_code == 200, response.text
            resumed = response.json()
            assert resumed["status"] == "running"
            assert resumed["resumed_from"] == {"checkpoint": "checkpoint_10.pt", "epoch": 2, "iteration": 10}
            assert (resumed["iteration"], resumed["max_epochs"], resumed["max_iterations"]) == (10, 4, 20)
            progress = [data["iteration"] async for event, data in events(client, run_id) if event == "progress"]
            assert all(10 < iteration <= 20 for iteration in progress), progress  # on from the checkpoint
            status = (await client.get(f"/runs/{run_id}")).json()
            assert (status["status"], status["epoch"], status["iteration"]) == ("completed", 4, 20)
            # The same run trained in one go ends with the same loss: weights, optimizer, counters and RNG
            # states came back from the checkpoint (from iteration 0 with those weights, it would differ).
            uninterrupted = await run_to_end(client, {**config, "epochs": 4})
            assert (await client.get(f"/runs/{uninterrupted}")).json()["output"] == status["output"]
    assert sorted(p.name for p in (tmp_path / run_id).glob("checkpoint_*.pt")) == ["checkpoint_20.pt"]


async def test_a_cancelled_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    with running(tmp_path) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            run_id = (await client.post("/runs", json={"epochs": 3, "epoch_length": 40, "step_delay": 0.01})).json()
            run_id = run_id["id"]
            await wait_until_training(client, run_id)
            cancelled = (await client.delete(f"/runs/{run_id}")).json()
            assert cancelled["status"] == "cancelled"
            assert 1 <= cancelled["iteration"] < 120
            response = await client.post(f"/runs/{run_id}/resume")  # no body: to the run's own 3 epochs
            assert response.status_code == 200, response.text
            assert response.json()["resumed_from"]["iteration"] == cancelled["iteration"]
            assert (await client.post(f"/runs/{run_id}/resume")).status_code == 409  # it is running
            assert (await client.delete(f"/runs/{run_id}")).json()["status"] == "cancelled"
            again = (await client.post(f"/runs/{run_id}/resume")).json()  # and once more, to its end
            assert again["resumed_from"]["iteration"] >= cancelled["iteration"]
            await run_to_end_of(client, run_id)
            status = (await client.get(f"/runs/{run_id}")).json()
            assert (status["status"], status["epoch"], status["iteration"]) == ("completed", 3, 120)


async def run_to_end_of(client: httpx.AsyncClient, run_id: str) -> None:
    with anyio.fail_after(60):
        while (await client.get(f"/runs/{run_id}")).json()["status"] == "running":  # noqa: ASYNC110 - remote
            await anyio.sleep(0.02)


async def test_resume_answers_404_409_410_422_and_429(tmp_path: Path) -> None:
    with running(tmp_path, max_running=1, finished_ttl=3600) as (url, app):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for unknown in ("0123456789ab", "nope", "..%2F.."):
                assert (await client.post(f"/runs/{unknown}/resume")).status_code == 404
            done = await run_to_end(client, {"epochs": 1, "epoch_length": 20})
            response = await client.post(f"/runs/{done}/resume", json={"epochs": 1})
            assert response.status_code == 409
            assert "is at epoch 1 (iteration 20) of 1: ask for more epochs" in response.json()["detail"]
            for body, where in [({"epochs": 0}, ["body", "epochs"]), ({"lr": 1}, ["body", "lr"])]:
                response = await client.post(f"/runs/{done}/resume", json=body)
                assert (response.status_code, response.json()["detail"][0]["loc"]) == (422, where)
            response = await client.post(f"/runs/{done}/resume", json={"epochs": 60_000})
            assert response.status_code == 422  # over the work limit with this run's epoch_length
            assert "epochs * epoch_length is 1200000" in response.json()["detail"][0]["msg"]
            response = await client.post(f"/runs/{done}/resume", json={"epochs": 50_000})
            assert response.status_code == 200  # at the limit
            assert (await client.delete(f"/runs/{done}")).status_code == 200
            long_id = (await client.post("/runs", json=LONG)).json()["id"]
            response = await client.post(f"/runs/{done}/resume", json={"epochs": 50})
            assert response.status_code == 429  # the one slot is taken
            assert int(response.headers["retry-after"]) > 0
            assert (await client.delete(f"/runs/{long_id}")).status_code == 200
            # A run without a checkpoint: 409 while held, 410 once evicted.
            for path in (tmp_path / done).glob("checkpoint_*.pt"):
                path.unlink()
            response = await client.post(f"/runs/{done}/resume", json={"epochs": 50})
            assert response.status_code == 409
            assert "no checkpoint" in response.json()["detail"]
            app.state.registry.finished_ttl = 0
            response = await client.post(f"/runs/{done}/resume", json={"epochs": 50})
            assert response.status_code == 410
            assert "no checkpoint" in response.json()["detail"]


async def test_an_evicted_run_resumes_from_its_directory(tmp_path: Path) -> None:
    with running(tmp_path) as (url, app):
        registry = app.state.registry
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            run_id = await run_to_end(client, {"epochs": 1, "epoch_length": 4, "seed": 5})
            registry.finished_ttl = 0  # evicted at the next request
            response = await client.get(f"/runs/{run_id}")
            assert response.status_code == 410
            assert f"POST /runs/{run_id}/resume" in response.json()["detail"]
            response = await client.post(f"/runs/{run_id}/resume", json={"epochs": 2})
            assert response.status_code == 200, response.text
            assert response.json()["resumed_from"]["iteration"] == 4
            registry.finished_ttl = 3600  # held again
            await run_to_end_of(client, run_id)
            status = (await client.get(f"/runs/{run_id}")).json()
            assert (status["status"], status["epoch"], status["iteration"]) == ("completed", 2, 8)
            registry.finished_ttl = 0
            (tmp_path / run_id / "config.json").unlink()  # no config: nothing to resume it with
            response = await client.post(f"/runs/{run_id}/resume", json={"epochs": 3})
            assert response.status_code == 410
            assert "config.json" in response.json()["detail"]


async def test_the_status_shows_the_last_completed_iteration_while_a_step_runs(tmp_path: Path) -> None:
    with running(tmp_path) as (url, app):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            # Each step is one second, nearly all of it in the step: the engine's own state has output None then.
            run_id = (await client.post("/runs", json={**ENDLESS, "step_delay": 1.0})).json()["id"]
            await wait_until_training(client, run_id)
            status = (await client.get(f"/runs/{run_id}")).json()
            (listed,) = (await client.get("/runs")).json()
            for seen in (status, listed):
                assert seen["iteration"] >= 1
                assert isinstance(seen["output"], float)
                assert seen["metrics"]["loss"] == seen["output"]
            # Non-finite numbers are written as null: strict JSON has no NaN.
            app.state.runs[run_id].engine.state.metrics["nan"] = float("nan")
            assert (await client.get(f"/runs/{run_id}")).json()["metrics"]["nan"] is None
            assert (await client.delete(f"/runs/{run_id}")).json()["status"] == "cancelled"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("form", ["script", "uvicorn"])
async def test_sigterm_with_open_event_streams_ends_them_and_exits_cleanly(tmp_path: Path, form: str) -> None:
    port, runs_dir, log = free_port(), tmp_path / "runs", tmp_path / "stderr.txt"
    if form == "script":
        command = [sys.executable, "examples/service.py", "--port", str(port), "--runs-dir", str(runs_dir)]
    else:
        # uvicorn waits for open responses without end unless told otherwise: 30 s here, so that a stream
        # left open shows as "timeout graceful shutdown exceeded" and a traceback, not as a hung test.
        command = [sys.executable, "-m", "uvicorn", "examples.service:app", "--port", str(port)]
        command += ["--timeout-graceful-shutdown", "30"]
    env = clean_env(**{f"{PREFIX}RUNS_DIR": str(runs_dir)})
    async with server_process(command, env, log) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            ids = [(await client.post("/runs", json={**ENDLESS, "seed": i})).json()["id"] for i in range(2)]
            seen: dict[str, list[tuple[str, dict[str, Any]]]] = {run_id: [] for run_id in ids}
            streaming = {run_id: anyio.Event() for run_id in ids}

            async def read(run_id: str) -> None:
                async for event, data in events(client, run_id):  # until the server ends the stream
                    seen[run_id].append((event, data))
                    streaming[run_id].set()

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for run_id in ids:
                        tg.start_soon(read, run_id)
                    for run_id in ids:
                        await streaming[run_id].wait()
                    proc.send_signal(signal.SIGTERM)  # two streams open, mid-read
        assert_clean_exit(proc, log)
    for run_id in ids:
        event, data = seen[run_id][-1]
        assert (event, data["status"]) == ("end", "cancelled")  # ended by the server, with the final status
        assert data["iteration"] >= seen[run_id][-2][1]["iteration"] >= 1
        (checkpoint,) = (runs_dir / run_id).glob("checkpoint_*.pt")
        assert torch.load(checkpoint, weights_only=True)["trainer"]["iteration"] == data["iteration"]
