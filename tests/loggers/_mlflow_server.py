"""A real MLflow tracking server on 127.0.0.1 for the tests (sqlite backend, local artifacts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(directory: Path, start_timeout: float = 90.0) -> Iterator[str]:
    """Run ``mlflow server`` with its state in ``directory``; yield its URI; stop it (SIGTERM, then SIGKILL)."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    log_path = directory / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{directory}/mlflow.db",
             "--artifacts-destination", str(directory / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # No job runners (8 processes by default): start-up 25 s -> 9 s on 2 cores, and no CPU taken.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not up in {start_timeout} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.25)  # polling a process we cannot get an event from
        yield uri
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
