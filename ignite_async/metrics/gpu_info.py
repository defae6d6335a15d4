"""GPU memory use and utilisation in ``engine.state.metrics`` (pytorch-ignite's ``GpuInfo``), through NVML."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ignite_async.engine import Engine, Events
from ignite_async.metrics.metric import Metric

__all__ = ["GpuInfo"]

_INSTALL = "pip install nvidia-ml-py (NVIDIA's bindings, imported as pynvml; pytorch-ignite asks for 'pynvml<12')"


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def gpu_metrics(name: str, data: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """``{"<name>:<i> mem(%)": ..., "<name>:<i> util(%)": ...}`` from one query of every GPU.

    ``data`` has one entry per GPU, shaped as nvidia-smi's query (what pytorch-ignite reads):
    ``{"fb_memory_usage": {"used": MiB, "total": MiB}, "utilization": {"gpu_util": percent or "N/A"}}``.
    An entry that lacks a field is skipped with a warning; a utilisation of "N/A" is skipped silently.

    >>> gpu_metrics("gpu", [{"fb_memory_usage": {"used": 3.0, "total": 4.0}, "utilization": {"gpu_util": 7}}])
    {'gpu:0 mem(%)': 75, 'gpu:0 util(%)': 7}
    """
    metrics: dict[str, int] = {}
    # Memory first for every GPU, then utilisation, the order pytorch-ignite writes them in.
    for i, gpu in enumerate(data):
        memory = gpu.get("fb_memory_usage")
        if memory is None:
            warnings.warn(f"No GPU memory usage information available in {gpu}", stacklevel=2)
        elif not ("used" in memory and "total" in memory):
            warnings.warn(
                f"GPU memory usage information does not provide used/total memory consumption information in {memory}",
                stacklevel=2,
            )
        else:
            metrics[f"{name}:{i} mem(%)"] = int(memory["used"] * 100.0 / memory["total"])
    for i, gpu in enumerate(data):
        utilization = gpu.get("utilization")
        if utilization is None:
            warnings.warn(f"No GPU utilization information available in {gpu}", stacklevel=2)
        elif "gpu_util" not in utilization:
            warnings.warn(
                f"GPU utilization information does not provide 'gpu_util' information in {utilization}", stacklevel=2
            )
        else:
            # "N/A": this GPU does not report utilisation; pytorch-ignite leaves the value out too.
            with contextlib.suppress(ValueError):
                metrics[f"{name}:{i} util(%)"] = int(utilization["gpu_util"])
    return metrics


class GpuInfo(Metric):
    """Each GPU's used memory and utilisation, in percent, written to ``engine.state.metrics`` every iteration.

    ``attach(engine, name="gpu")`` adds ``"gpu:0 mem(%)"``, ``"gpu:0 util(%)"``, ``"gpu:1 mem(%)"``, ... (all the
    machine's GPUs, as NVML numbers them) at ``event_name`` (default ``ITERATION_COMPLETED``). Values are ints; a
    GPU whose utilisation is not available has no ``util(%)`` entry. It needs a CUDA GPU and the ``pynvml``
    module (``pip install nvidia-ml-py``). The query is a few NVML calls (no CUDA synchronisation).

    :raises RuntimeError: no CUDA GPU is available, or NVML (the NVIDIA driver's library) cannot start.
    :raises ModuleNotFoundError: ``pynvml`` is not installed.

    >>> import torch
    >>> try:
    ...     GpuInfo()
    ... except RuntimeError as e:  # a machine without a GPU
    ...     print("CUDA GPU" in str(e))
    ... else:
    ...     print(True)
    True
    """

    required_output_keys = None

    def __init__(self) -> None:
        pynvml = _import_pynvml()
        if not torch.cuda.is_available():
            also = "" if pynvml is not None else f"; it also needs the pynvml module: {_INSTALL}"
            raise RuntimeError(
                "GpuInfo needs a CUDA GPU, and torch.cuda.is_available() is False on this machine (no GPU, no "
                f"driver, or a CPU-only torch build){also}"
            )
        if pynvml is None:
            raise ModuleNotFoundError(f"GpuInfo reads GPU memory and utilisation through pynvml: {_INSTALL}")
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            raise RuntimeError(f"GpuInfo could not start NVML, the NVIDIA driver's library: {e}") from e
        self._nvml = pynvml
        super().__init__()

    def reset(self) -> None:
        """Nothing is accumulated."""

    def update(self, output: Any) -> None:
        """Nothing is accumulated: the values are read when computed."""

    def compute(self) -> list[dict[str, Any]]:
        """One entry per GPU, shaped as nvidia-smi's query that pytorch-ignite returns (memory in MiB)."""
        nvml = self._nvml
        data: list[dict[str, Any]] = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            gpu: dict[str, Any] = {}
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                gpu["fb_memory_usage"] = {"used": memory.used / 2**20, "total": memory.total / 2**20, "unit": "MiB"}
            except nvml.NVMLError as e:
                warnings.warn(f"GpuInfo: NVML gives no memory information for GPU {i}: {e}", stacklevel=2)
            try:
                gpu_util: int | str = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except nvml.NVMLError:
                gpu_util = "N/A"  # not supported on this GPU (nvidia-smi prints N/A)
            gpu["utilization"] = {"gpu_util": gpu_util, "unit": "%"}
            data.append(gpu)
        if not data:
            warnings.warn("No GPU information available", stacklevel=2)
        return data

    def completed(self, engine: Engine, name: str) -> None:
        """Write every GPU's values into ``engine.state.metrics``."""
        data = self.compute()
        if data:
            engine.state.metrics.update(gpu_metrics(name, data))

    def attach(self, engine: Engine, name: str = "gpu", event_name: Any = Events.ITERATION_COMPLETED) -> None:
        """Write the values at every ``event_name`` (pytorch-ignite's signature: an event, not a usage)."""
        engine.add_event_handler(event_name, self.completed, name)

    def detach(self, engine: Engine, event_name: Any = Events.ITERATION_COMPLETED) -> None:
        """Stop writing the values at ``event_name``."""
        if engine.has_event_handler(self.completed, event_name):
            engine.remove_event_handler(self.completed, event_name)

    def is_attached(self, engine: Engine, event_name: Any = Events.ITERATION_COMPLETED) -> bool:
        """Whether the values are written at ``event_name``."""
        return engine.has_event_handler(self.completed, event_name)
