"""GpuInfo: its errors on a machine without a GPU, and the metric names it writes (pytorch-ignite's).

The NVML queries themselves run only on a machine with an NVIDIA GPU; this suite has none, so they are not
exercised here (the test that would is skipped without CUDA).
"""

from __future__ import annotations

import sys

import pytest
import torch

from ignite_async import Engine
from ignite_async.metrics.gpu_info import GpuInfo, gpu_metrics

pytestmark = pytest.mark.anyio

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")


@needs_no_gpu
def test_no_gpu_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"GpuInfo needs a CUDA GPU, and torch\.cuda\.is_available\(\) is False"):
        GpuInfo()


@needs_no_gpu
def test_no_gpu_and_no_pynvml_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # importing it raises ImportError, as when not installed
    with pytest.raises(RuntimeError, match="CUDA GPU") as info:
        GpuInfo()
    assert "pip install nvidia-ml-py" in str(info.value)


def test_missing_pynvml_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine with a GPU but without pynvml: the check that comes after the GPU's.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(ModuleNotFoundError, match="pip install nvidia-ml-py"):
        GpuInfo()


def test_metric_names_and_values() -> None:
    data = [
        {"fb_memory_usage": {"used": 1000.0, "total": 3000.0, "unit": "MiB"}, "utilization": {"gpu_util": 59}},
        {"fb_memory_usage": {"used": 0.0, "total": 80.0}, "utilization": {"gpu_util": "N/A"}},
    ]
    metrics = gpu_metrics("gpu", data)
    assert metrics == {"gpu:0 mem(%)": 33, "gpu:1 mem(%)": 0, "gpu:0 util(%)": 59}
    assert list(metrics) == ["gpu:0 mem(%)", "gpu:1 mem(%)", "gpu:0 util(%)"]  # pytorch-ignite's order
    assert gpu_metrics("dev", data[:1]) == {"dev:0 mem(%)": 33, "dev:0 util(%)": 59}


def test_incomplete_reports_warn_and_are_skipped() -> None:
    with pytest.warns(UserWarning, match="No GPU memory usage information"):
        assert gpu_metrics("gpu", [{"utilization": {"gpu_util": 5}}]) == {"gpu:0 util(%)": 5}
    with pytest.warns(UserWarning, match="does not provide used/total"):
        assert gpu_metrics("gpu", [{"fb_memory_usage": {"used": 1.0}, "utilization": {"gpu_util": 5}}]) == {
            "gpu:0 util(%)": 5
        }
    with pytest.warns(UserWarning, match="No GPU utilization information"):
        assert gpu_metrics("gpu", [{"fb_memory_usage": {"used": 1.0, "total": 2.0}}]) == {"gpu:0 mem(%)": 50}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and pynvml")
async def test_on_a_gpu() -> None:  # pragma: no cover - not run on this project's CPU machines
    pytest.importorskip("pynvml")
    engine = Engine(lambda e, b: b)
    info = GpuInfo()
    info.attach(engine)
    assert info.is_attached(engine)
    await engine.run([0, 1], max_epochs=1)
    assert 0 <= engine.state.metrics["gpu:0 mem(%)"] <= 100
