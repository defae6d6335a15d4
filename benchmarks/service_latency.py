"""Service responsiveness: p99 latency of GET /runs/{id} while two runs train (real uvicorn on 127.0.0.1).

Target: 500 requests answer with p99 <= 50 ms while two trainings run in the same server.

    .venv/bin/python benchmarks/service_latency.py
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as runs_dir:
        command = [sys.executable, str(ROOT / "examples" / "service.py"), "--port", str(port), "--runs-dir", runs_dir]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with subprocess.Popen(command, env=env) as server, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/runs/none")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise SystemExit("the service did not start") from None
                        time.sleep(0.1)
                config = {"epochs": 1000, "epoch_length": 100, "hidden": 256, "batch_size": 256}
                ids = [client.post("/runs", json={**config, "seed": i}).json()["id"] for i in range(2)]
                while min(client.get(f"/runs/{i}").json()["iteration"] for i in ids) < 5:
                    time.sleep(0.05)  # until both train
                latencies = []
                for n in range(500):
                    started = time.perf_counter()
                    response = client.get(f"/runs/{ids[n % 2]}")
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200
                progress = [client.get(f"/runs/{i}").json()["iteration"] for i in ids]
                for run_id in ids:
                    client.delete(f"/runs/{run_id}")
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(0.99 * len(latencies)) - 1]
    print("500 GET /runs/{id} while two runs train (steps in worker threads), real uvicorn on 127.0.0.1")
    print("| p50 (ms) | p99 (ms) | max (ms) | target p99 | iterations trained meanwhile |")
    print("|---:|---:|---:|---:|---:|")
    ok = "✓" if p99 <= 0.050 else "✗"
    print(
        f"| {p50 * 1e3:.1f} | {p99 * 1e3:.1f} | {latencies[-1] * 1e3:.1f} | ≤ 50 ms {ok} "
        f"| {' + '.join(map(str, progress))} |"
    )


if __name__ == "__main__":
    main()
