"""The training service, served by uvicorn for real on 127.0.0.1 and driven with httpx."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import torch

from tests.examples.test_examples import ROOT, load
from tests.loggers._http_server import serve

pytestmark = pytest.mark.anyio

LONG = {"epochs": 10_000, "epoch_length": 10, "step_delay": 0.005}


async def events(client: httpx.AsyncClient, run_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The run's Server-Sent Events as (event, data)."""
    async with client.stream("GET", f"/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                yield event, json.loads(line[len("data: ") :])


async def wait_until_training(client: httpx.AsyncClient, run_id: str) -> None:
    """Poll the status until the run has done an iteration (across HTTP there is no event to wait on here)."""
    with anyio.fail_after(60):
        while (await client.get(f"/runs/{run_id}")).json()["iteration"] < 1:  # noqa: ASYNC110 - remote state
            await anyio.sleep(0.02)


@pytest.fixture
def service(tmp_path: Path) -> Any:
    app = load("service").create_app(tmp_path)
    with serve(app, path="", lifespan="on") as url:
        yield url


async def test_a_default_run_streams_progress_and_completes(service: str) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        response = await client.post("/runs", json={})
        assert response.status_code == 201
        run_id = response.json()["id"]
        seen = [(event, data) async for event, data in events(client, run_id)]
        progress = [data["iteration"] for event, data in seen if event == "progress"]
        assert progress == sorted(progress)
        assert progress
        assert seen[-1][0] == "end"
        status = (await client.get(f"/runs/{run_id}")).json()
        assert (status["status"], status["epoch"], status["iteration"]) == ("completed", 5, 100)
        assert "loss" in status["metrics"]


async def test_bad_config_and_unknown_runs(service: str) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        response = await client.post("/runs", json={"epochs": 0})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "epochs"]
        response = await client.post("/runs", json={"learning_rate": 0.1})
        assert response.status_code == 422
        assert "learning_rate" in response.text
        for method, path in (("GET", "/runs/nope"), ("DELETE", "/runs/nope"), ("GET", "/runs/nope/events")):
            assert (await client.request(method, path)).status_code == 404


async def test_two_runs_at_once_then_cancel_each_with_a_final_checkpoint(service: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        ids = [(await client.post("/runs", json={**LONG, "seed": i})).json()["id"] for i in range(2)]
        streams: dict[str, list[tuple[str, dict[str, Any]]]] = {run_id: [] for run_id in ids}
        both_training = {run_id: anyio.Event() for run_id in ids}

        async def watch(run_id: str) -> None:
            async for event, data in events(client, run_id):  # to its end: cancelling the run ends it
                streams[run_id].append((event, data))
                if event == "progress":
                    both_training[run_id].set()

        async with anyio.create_task_group() as tg:
            for run_id in ids:
                tg.start_soon(watch, run_id)
            for run_id in ids:
                await both_training[run_id].wait()  # both train at once
            for run_id in ids:
                status = (await client.delete(f"/runs/{run_id}")).json()
                assert status["status"] == "cancelled"
                checkpoint = next((tmp_path / run_id).glob("checkpoint_*.pt"))
                saved = torch.load(checkpoint, weights_only=True)
                assert saved["trainer"]["iteration"] == status["iteration"]  # resumable from where it stopped
        for run_id in ids:
            assert streams[run_id][-1][0] == "end"
            assert streams[run_id][-1][1]["status"] == "cancelled"
            assert (await client.get(f"/runs/{run_id}")).json()["status"] == "cancelled"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_cancels_trainings_cleanly_each_leaving_a_checkpoint(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "examples" / "service.py"), "--port", str(port), "--runs-dir", str(tmp_path)]
    with subprocess.Popen(command, env=env) as proc:  # noqa: ASYNC220 - the server under test, a real process
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                deadline = time.monotonic() + 60
                while True:  # the server is up once it answers
                    try:
                        await client.get("/runs/none")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "the service did not start"
                        await anyio.sleep(0.1)
                # One epoch that never ends: a checkpoint can only come from the shutdown itself.
                endless = {"epochs": 1, "epoch_length": 100_000, "step_delay": 0.005}
                ids = [(await client.post("/runs", json={**endless, "seed": i})).json()["id"] for i in range(2)]
                before = {}
                for run_id in ids:
                    await wait_until_training(client, run_id)
                    before[run_id] = (await client.get(f"/runs/{run_id}")).json()["iteration"]
            proc.send_signal(signal.SIGTERM)
            # A graceful shutdown, after which uvicorn re-raises the signal: no task or thread held it up.
            assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
    for run_id in ids:
        (checkpoint,) = (tmp_path / run_id).glob("checkpoint_*.pt")
        saved = torch.load(checkpoint, weights_only=True)
        assert saved["trainer"]["iteration"] >= before[run_id]  # where the run was when the server stopped
