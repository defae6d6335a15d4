"""The training service, served by uvicorn for real on 127.0.0.1 and driven with httpx."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import h11
import httpx
import pytest
import torch

from tests.conftest import fill
from tests.examples.test_examples import ROOT, load
from tests.loggers._http_server import serve

pytestmark = pytest.mark.anyio

LONG = {"epochs": 10_000, "epoch_length": 10, "step_delay": 0.005}
SHORT = {"epochs": 1, "epoch_length": 2}
TOKEN = "s3cret-T0ken_for-tests"


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


async def run_to_end(client: httpx.AsyncClient, config: dict[str, Any]) -> str:
    """Start a run and poll until it is no longer running (or no longer held: 410). Returns its id."""
    response = await client.post("/runs", json=config)
    assert response.status_code == 201, response.text
    run_id = str(response.json()["id"])
    with anyio.fail_after(60):
        while True:
            response = await client.get(f"/runs/{run_id}")
            if response.status_code != 200 or response.json()["status"] != "running":
                return run_id
            await anyio.sleep(0.02)


@contextmanager
def running(tmp_path: Path, **options: Any) -> Iterator[tuple[str, Any]]:
    """The service made by create_app(tmp_path, **options), served on 127.0.0.1: (its URL, the app)."""
    app = load("service").create_app(tmp_path, **options)
    with serve(app, path="", lifespan="on") as url:
        yield url, app


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    with running(tmp_path) as (url, _):
        yield url


async def raw_exchange(
    url: str, head: h11.Request, body_start: bytes = b"", *, wait_for_close: bool = False
) -> tuple[h11.Response, bytes, bool]:
    """Send a request's head and the start of its body, never the rest, then read the response, with h11 on a
    plain socket: httpx sends a whole body before it reads. Returns the response, its body, and (with
    ``wait_for_close``) whether the server then closed the connection."""
    address = httpx.URL(url)
    assert address.port is not None
    conn = h11.Connection(h11.CLIENT)
    async with await anyio.connect_tcp(address.host, address.port) as stream:
        await stream.send(conn.send(head) + (conn.send(h11.Data(data=body_start)) if body_start else b""))
        response, content = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    conn.receive_data(b"")
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        assert response is not None
        closed = False
        if wait_for_close:  # else a kept-alive connection would wait here for uvicorn's keep-alive timeout
            try:
                await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                closed = True
    return response, content, closed


def header(response: h11.Response, name: str) -> str | None:
    return next((v.decode() for k, v in response.headers if k == name.lower().encode()), None)


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
        assert (status["max_epochs"], status["max_iterations"]) == (5, 100)
        assert status["metrics"]["loss"] == status["output"] == seen[-1][1]["output"]
        assert isinstance(status["output"], float)
        assert (await client.get(f"/runs/{run_id}/events", params={"every": 0})).status_code == 422


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


async def test_non_finite_numbers_and_seeds_that_would_overflow_get_422(service: str) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        # Raw JSON text: NaN and Infinity are not JSON, but Python's parser takes them, and 1e999 parses as inf.
        for field, text in [("lr", "NaN"), ("lr", "1e999"), ("step_delay", "Infinity"), ("step_delay", "-Infinity")]:
            body = f'{{"{field}": {text}}}'
            response = await client.post("/runs", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, (body, response.status_code)
            assert response.json()["detail"][0]["loc"] == ["body", field]
        service_module = load("service")
        max_seed, max_iterations = service_module.MAX_SEED, service_module.MAX_ITERATIONS
        for seed in (10**30, 2**63, max_seed + 1, -1):
            response = await client.post("/runs", json={**SHORT, "seed": seed})
            assert response.status_code == 422, (seed, response.status_code)
            assert response.json()["detail"][0]["loc"] == ["body", "seed"]
        run_id = await run_to_end(client, {**SHORT, "seed": max_seed})
        assert (await client.get(f"/runs/{run_id}")).json()["status"] == "completed"  # the largest seed trains
    # The bound is tight: at the last iteration any config can reach, the largest seed still seeds torch, and
    # one more would not fit in 63 bits.
    torch.Generator().manual_seed(service_module.batch_seed(max_seed, max_iterations))
    assert (
        service_module.batch_seed(max_seed, max_iterations)
        < 2**63
        <= service_module.batch_seed(max_seed + 1, max_iterations)
    )


async def test_configs_whose_work_or_memory_is_too_large_get_422_naming_the_limit(service: str) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        response = await client.post("/runs", json={**SHORT, "hidden": 4096, "batch_size": 65_536})  # 3 GB
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body"]
        assert "hidden * batch_size is 268435456, over the limit of 1048576" in error["msg"]
        response = await client.post("/runs", json={"epochs": 100_000, "epoch_length": 100_000})  # 10**10
        assert response.status_code == 422
        assert "epochs * epoch_length is 10000000000, over the limit of 1000000" in response.json()["detail"][0]["msg"]
        run_id = await run_to_end(client, {**SHORT, "hidden": 1024, "batch_size": 1024})  # at the limit
        assert (await client.get(f"/runs/{run_id}")).json()["status"] == "completed"


async def test_concurrent_runs_beyond_the_limit_get_429_with_retry_after(tmp_path: Path) -> None:
    with running(tmp_path, max_running=2) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            responses: list[httpx.Response] = []

            async def post(seed: int) -> None:
                responses.append(await client.post("/runs", json={**LONG, "seed": seed}))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:  # six at once
                    for seed in range(6):
                        tg.start_soon(post, seed)
            accepted = [r.json()["id"] for r in responses if r.status_code == 201]
            refused = [r for r in responses if r.status_code == 429]
            assert (len(accepted), len(refused)) == (2, 4)
            for response in refused:
                assert int(response.headers["retry-after"]) > 0
                assert "2 runs are training" in response.json()["detail"]
            # A slot frees when a run ends.
            assert (await client.delete(f"/runs/{accepted[0]}")).json()["status"] == "cancelled"
            response = await client.post("/runs", json=LONG)
            assert response.status_code == 201
            for run_id in (accepted[1], response.json()["id"]):
                assert (await client.delete(f"/runs/{run_id}")).status_code == 200


async def test_finished_runs_are_evicted_beyond_a_count_keeping_their_files(tmp_path: Path) -> None:
    with running(tmp_path, keep_finished=1) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = await run_to_end(client, SHORT)
            second = await run_to_end(client, SHORT)
            assert (await client.get(f"/runs/{second}")).json()["status"] == "completed"
            for method, path in (
                ("GET", f"/runs/{first}"),
                ("GET", f"/runs/{first}/events"),
                ("DELETE", f"/runs/{first}"),
            ):
                response = await client.request(method, path)
                assert response.status_code == 410
                detail = response.json()["detail"]
                assert "evicted" in detail
                assert str(tmp_path / first) in detail
            assert list((tmp_path / first).glob("checkpoint_*.pt"))  # the files stay
            assert (await client.get("/runs/0123456789ab")).status_code == 404  # never existed


async def test_finished_runs_are_evicted_after_their_time(tmp_path: Path) -> None:
    with running(tmp_path, finished_ttl=0) as (url, app):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            run_id = await run_to_end(client, SHORT)
            response = await client.get(f"/runs/{run_id}")
            assert response.status_code == 410
            assert str(tmp_path / run_id) in response.json()["detail"]
            assert app.state.runs == {}


async def test_bodies_over_the_limit_get_413_without_being_read(service: str) -> None:
    head = h11.Request(
        method="POST",
        target="/runs",
        headers=[("Host", "127.0.0.1"), ("Content-Type", "application/json"), ("Content-Length", "50000000")],
    )
    with anyio.fail_after(30):
        refused, _, _ = await raw_exchange(service, head)  # the head alone: none of the 50 MB is sent
    assert refused.status_code == 413
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        with anyio.fail_after(30):
            response = await client.post(
                "/runs", content=b"x" * 50_000_000, headers={"content-type": "application/json"}
            )
        assert response.status_code == 413

        async def chunked(size: int) -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"{}"
            for _ in range(size // 4096):
                yield b" " * 4096  # valid JSON padding: only the size is wrong

        response = await client.post("/runs", content=chunked(128 * 1024), headers={"content-type": "application/json"})
        assert response.status_code == 413
        response = await client.post("/runs", content=chunked(60 * 1024), headers={"content-type": "application/json"})
        assert response.status_code == 201  # under the limit
        assert (await client.delete(f"/runs/{response.json()['id']}")).status_code == 200


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closed(tmp_path: Path) -> None:
    with running(tmp_path, body_timeout=0.5) as (url, app):
        head = h11.Request(
            method="POST",
            target="/runs",
            headers=[("Host", "127.0.0.1"), ("Content-Type", "application/json"), ("Content-Length", "100")],
        )
        started = anyio.current_time()
        with anyio.fail_after(30):
            response, content, closed = await raw_exchange(
                url, head, b'{"epochs": ', wait_for_close=True
            )  # the rest never comes
        assert response.status_code == 408
        assert anyio.current_time() - started >= 0.45
        assert "did not arrive within 0.5 s" in json.loads(content)["detail"]
        assert closed
        assert app.state.runs == {}


async def test_with_a_token_every_endpoint_needs_it(tmp_path: Path) -> None:
    with running(tmp_path, token=TOKEN) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            endpoints = [("POST", "/runs"), ("GET", "/runs/0123456789ab"), ("GET", "/runs/0123456789ab/events")]
            endpoints += [("DELETE", "/runs/0123456789ab"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/x")]
            wrong = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"}]
            wrong += [{"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}, {"Authorization": "Bearer"}]
            for method, path in endpoints:
                for headers in wrong:
                    response = await client.request(method, path, headers=headers, json={})
                    assert response.status_code == 401, (method, path, headers)
                    assert response.headers["www-authenticate"] == "Bearer"
            good = {"Authorization": f"Bearer {TOKEN}"}
            response = await client.post("/runs", json=LONG, headers={"Authorization": f"bearer {TOKEN}"})
            assert response.status_code == 201  # the scheme is case-insensitive
            run_id = response.json()["id"]
            assert (await client.get(f"/runs/{run_id}", headers=good)).status_code == 200
            async with client.stream("GET", f"/runs/{run_id}/events", headers=good) as stream:
                assert stream.status_code == 200
            assert (await client.delete(f"/runs/{run_id}", headers=good)).json()["status"] == "cancelled"
            assert (await client.get("/openapi.json", headers=good)).status_code == 200
        # Refused from the head alone: a client without the token cannot make the server wait for a body.
        head = h11.Request(method="POST", target="/runs", headers=[("Host", "127.0.0.1"), ("Content-Length", "100")])
        with anyio.fail_after(30):
            refused, _, _ = await raw_exchange(url, head)
        assert refused.status_code == 401


async def test_the_command_line_needs_a_token_beyond_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service_module = load("service")
    served: list[dict[str, Any]] = []

    def fake_run(app: Any, **options: Any) -> None:  # what main() would serve, without serving it
        served.append({"app": app, **options})

    monkeypatch.setattr(service_module.uvicorn, "run", fake_run)
    base = ["--runs-dir", str(tmp_path)]
    env = {service_module.TOKEN_ENV: TOKEN}

    for host, url in (("127.0.0.1", "127.0.0.1"), ("::1", "[::1]"), ("localhost", "localhost")):
        service_module.main([*base, "--host", host, "--port", "8123"], environ={})
        assert served.pop()["host"] == host
        assert f"service: listening on http://{url}:8123" in capsys.readouterr().err

    for host in ("0.0.0.0", "192.168.1.5", "example.com"):
        with pytest.raises(SystemExit) as exit_info:
            service_module.main([*base, "--host", host], environ={})
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"--host {host} would serve other machines without authentication" in err
        assert service_module.TOKEN_ENV in err
    assert not served

    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    for argv, environ, token in [
        ([*base, "--host", "0.0.0.0"], env, TOKEN),
        ([*base, "--token-file", str(token_file)], env, "from-the-file"),  # the file wins
    ]:
        service_module.main(argv, environ=environ)
        with serve(served.pop()["app"], path="", lifespan="on") as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                assert (await client.get("/runs/none")).status_code == 401
                response = await client.get("/runs/none", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 404
        assert "every request needs the bearer token" in capsys.readouterr().err  # said at startup

    # The environment gives the flags' defaults; a flag wins.
    environ = {"IGNITE_ASYNC_SERVICE_MAX_RUNNING": "2", "IGNITE_ASYNC_SERVICE_FINISHED_TTL": "60"}
    service_module.main([*base], environ=environ)
    registry = served.pop()["app"].state.registry
    assert (registry.max_running, registry.finished_ttl, registry.directory) == (2, 60, tmp_path)
    service_module.main([*base, "--max-running", "3"], environ=environ)
    assert served.pop()["app"].state.registry.max_running == 3
    for argv, environ, named in [
        (base, {"IGNITE_ASYNC_SERVICE_MAX_RUNNING": "many"}, "IGNITE_ASYNC_SERVICE_MAX_RUNNING"),
        ([*base, "--max-running", "0"], {}, "--max-running"),
    ]:
        with pytest.raises(SystemExit):
            service_module.main(argv, environ=environ)
        assert named in capsys.readouterr().err

    for argv, environ in [(base, {service_module.TOKEN_ENV: ""}), ([*base, "--token-file", str(tmp_path / "no")], {})]:
        with pytest.raises(SystemExit):
            service_module.main(argv, environ=environ)
        assert not served


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
    env = {k: v for k, v in os.environ.items() if k != "IGNITE_ASYNC_SERVICE_TOKEN"}  # no token: loopback only
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, str(ROOT / "examples" / "service.py"), "--port", str(port), "--runs-dir", str(tmp_path)]
    log = tmp_path / "stderr.txt"
    # A file, not a pipe: nothing reads a pipe while the server runs, and a full one would stop it.
    with log.open("wb") as stderr, subprocess.Popen(command, env=env, stderr=stderr) as proc:  # noqa: ASYNC220
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                with anyio.fail_after(60):
                    while True:  # the server is up once it answers
                        try:
                            await client.get("/runs/none")
                            break
                        except httpx.TransportError:
                            assert proc.poll() is None, log.read_text()
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
    text = log.read_text()
    assert f"service: listening on http://127.0.0.1:{port}" in text
    assert f"runs go to {tmp_path}; no token" in text
    for run_id in ids:
        (checkpoint,) = (tmp_path / run_id).glob("checkpoint_*.pt")
        saved = torch.load(checkpoint, weights_only=True)
        assert saved["trainer"]["iteration"] >= before[run_id]  # where the run was when the server stopped


async def test_a_run_whose_final_checkpoint_fails_is_reported_as_failed_to_checkpoint(small_filesystem: Path) -> None:
    with running(small_filesystem) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            endless = {"epochs": 1, "epoch_length": 100_000, "step_delay": 0.005}  # no checkpoint until the cancel
            run_id = (await client.post("/runs", json=endless)).json()["id"]
            await wait_until_training(client, run_id)
            fill(small_filesystem)
            status = (await client.delete(f"/runs/{run_id}")).json()
    assert status["status"] == "failed-to-checkpoint"
    assert "no space left on the device" in status["error"]
    assert not list((small_filesystem / run_id).glob("checkpoint_*.pt"))
