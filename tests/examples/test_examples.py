from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
async def test_quickstart_learns_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = load("quickstart")
    mse = await quickstart.main(epochs=10)
    out = capsys.readouterr().out
    # Evaluated before training (STARTED) and at epochs 5 and 10; the network must have learned something.
    assert out.count("val mse") == 3
    assert mse < 0.05


@pytest.mark.anyio
async def test_concurrent_evaluation_equals_blocking_evaluation_of_the_same_weights() -> None:
    example = load("concurrent_eval")
    results = await example.main(epochs=6)
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    val_loader = example.make_loader(1024, seed=1, shuffle=False)
    for record in results.values():
        assert record["mse"] == pytest.approx(example.blocking_mse(record["weights"], val_loader), rel=1e-6)
    # The snapshots really differ, and the first evaluation ended while the trainer was still training.
    assert results[1]["mse"] != results[6]["mse"]
    assert results[1]["started_at_iteration"] < results[1]["finished_at_iteration"] < 6 * 32
