"""TorchMetric on two processes over gloo, launched by torchrun: values equal one process's on the same data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.distributed import _launch as launch
from tests.distributed import _torchmetric_worker as worker

pytestmark = pytest.mark.timeout(200)


def test_two_ranks_reduce_torchmetrics_states_like_one_process(tmp_path: Path) -> None:
    # One launch (on asyncio): the reduction runs in event order, whichever event loop runs the handlers.
    result = launch.torchrun(Path(worker.__file__), str(tmp_path), "asyncio", timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    alone = worker.evaluate(worker.batches(slice(0, worker.ROWS)), background=False, backend="asyncio")
    assert sorted(alone) == [
        "auroc", "c_MulticlassAccuracy", "c_MulticlassConfusionMatrix", "c_MulticlassF1Score", "mean", "pearson",
        "rows_here",
    ]  # fmt: skip
    for rank in (0, 1):
        together = json.loads((tmp_path / f"torchmetric_{rank}.json").read_text())
        assert "all_gather() was called from a background task" in together.pop("refused")
        for background in ("False", "True"):
            values = together[background]
            assert sorted(values) == sorted(alone)
            assert values["c_MulticlassConfusionMatrix"] == alone["c_MulticlassConfusionMatrix"]
            for name in ("auroc", "c_MulticlassAccuracy", "c_MulticlassF1Score", "mean", "pearson"):
                assert values[name] == pytest.approx(alone[name], rel=1e-5), (rank, background, name)
            # sync_on_compute=False: each rank's own rows (24 and 16), not the 40 of the whole
            assert values["rows_here"] == (worker.RANK_0_ROWS if rank == 0 else worker.ROWS - worker.RANK_0_ROWS)
