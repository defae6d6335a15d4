"""The benchmarks that CI can run: ``benchmarks/gpu_overlap.py --smoke`` finishes and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_overlap.py"


def run_smoke(*extra: str) -> str:
    # The script under test is a separate process, as a user runs it; bounded well below pytest's timeout.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, f"gpu_overlap.py --smoke failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_gpu_overlap_smoke_prints_the_table_and_says_where_it_ran() -> None:
    out = run_smoke()
    lines = out.splitlines()
    assert "| measure | ignite_async | pytorch-ignite 0.5.5 | ratio | target |" in lines
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ") and line.count("|") == 6}
    for row in ("step time, nothing attached (ms)", "blocked per evaluation snapshot (ms, median)"):
        assert row in rows, f"missing row {row!r} in:\n{out}"
    step_row = next(line for line in lines if line.startswith("| step time, checkpoint"))
    blocked_row = next(line for line in lines if line.startswith("| blocked per checkpoint"))
    assert "≤ 1.05x" in step_row
    assert "≤ 0.05x" in blocked_row
    for row in (step_row, blocked_row):
        assert row.rstrip(" |").endswith(("✓", "✗")), row  # met or not, said either way
    idle_row = next(line for line in lines if "from the trace" in line)
    assert "tracer not available" in idle_row or " ms of " in idle_row or "spans" in idle_row, idle_row
    assert "background evaluations done" in out
    if torch.cuda.is_available():
        assert "GPU measurement on " in out
    else:
        # Never GPU numbers from a CPU: the run says so, before the table and in it.
        assert lines[0] == "CUDA is absent: CPU run, not the GPU measurement"
        assert "| device | CPU (not the GPU measurement) |" in out
