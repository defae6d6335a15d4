"""Launch a script under torchrun with 2 ranks on 127.0.0.1, and never leave a rank behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ignite_async.distributed.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]


def torchrun(script: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """Run ``script args`` on 2 ranks; on timeout, kill torchrun and its workers and fail with their output."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1"]
    command += ["--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # torchrun stops its workers (in sessions of their own) on SIGTERM; SIGKILL only if it does not.
            process.terminate()
            try:
                stdout, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, stderr = process.communicate()
            raise AssertionError(f"torchrun {args} hung for {timeout} s:\n{stdout[-3000:]}\n{stderr[-8000:]}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
