"""Any ``torchmetrics`` metric or collection, attached to an engine like the metrics of this package.

torchmetrics accumulates in states registered with ``add_state`` and reduces them across ranks in
``compute()``. :class:`TorchMetric` feeds it the engine's output at the usage's events, publishes what it
computes into ``engine.state.metrics``, saves and restores its states for checkpoints, and makes the
cross-rank reduction go through ``ignite_async.distributed``'s collectives (in event order, never from a
thread). Needs the ``metrics`` extra: ``pip install 'ignite-async[metrics]'``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from ignite_async._threads import run_sync
from ignite_async.distributed.comm import all_gather
from ignite_async.engine import Engine
from ignite_async.engine.background import TaskHandle, in_background
from ignite_async.metrics.metric import Metric, NotComputableError, ResultMode, _copy, publish, published_value

if TYPE_CHECKING:
    from torchmetrics import Metric as TMMetric
    from torchmetrics import MetricCollection

__all__ = ["TorchMetric"]

_INSTALL = "pip install 'ignite-async[metrics]'"


def _torchmetrics() -> Any:
    try:
        import torchmetrics
    except ImportError as e:
        raise ImportError(f"TorchMetric needs torchmetrics, which is not installed: {_INSTALL}") from e
    return torchmetrics


def _never() -> bool:
    return False


def _gather_all_tensors(result: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """Every rank's ``result`` (shapes may differ), in rank order: torchmetrics' ``dist_sync_fn`` contract.

    Goes through :func:`ignite_async.distributed.all_gather` on the job's process group, so it refuses to run
    from a background task or thread, where ranks could call collectives in different orders and hang.
    """
    if group is not None:  # the metric was given a process group of its own: torchmetrics' gather over it
        if in_background.get():
            raise RuntimeError("a torchmetrics state sync was called from a background task: compute in event order")
        from torchmetrics.utilities.distributed import gather_all_tensors

        return gather_all_tensors(result, group)
    # A leading 1 keeps the shape row non-empty for 0-d states; every rank's states have the same ndim.
    shapes = all_gather(torch.tensor([[1, *result.shape]], dtype=torch.int64))
    values = all_gather(result.reshape(-1))
    dims = [row[1:] for row in shapes.tolist()]
    parts = values.split([math.prod(d) for d in dims])
    return [part.reshape(d) for part, d in zip(parts, dims, strict=True)]


class TorchMetric(Metric):
    """A ``torchmetrics.Metric`` or ``MetricCollection`` as an attachable metric, with every usage.

    Each update passes the (transformed) output to ``metric.update``: a tuple or list as positional
    arguments (all of its items: ``(preds, target)``, or ``(preds, target, indexes)`` for retrieval
    metrics), a dict through ``required_output_keys`` (default ``("y_pred", "y")``), anything else as the
    one argument (``MeanMetric``). Inputs are moved to ``device``; without one the metric stays where it is.

    A single metric's value lands in ``engine.state.metrics[name]`` (a dict's items too, as for every
    metric of this package); a collection's values land one per member, under the names the collection
    gives them (with its ``prefix``/``postfix``), and ``name`` is not used, unless ``metrics_result_mode``
    says otherwise.

    No device synchronisation per iteration comes from this class: updates never read a value back, and
    values are read back only where the usage computes. torchmetrics' own input checks do read values
    back: create the metric with ``validate_args=False`` (classification) and ``nan_strategy="disable"``
    (aggregation), leave ``compute_on_cpu`` False (it copies list states to the CPU after every update), and
    give a ``MetricCollection`` explicit ``compute_groups`` (or ``False``): the default compares the
    members' states once, at the first update. Multiclass stat-score metrics (accuracy, F1, confusion
    matrix) count with ``torch.bincount``, which reads its input's maximum back on CUDA at every update,
    unless ``torch.use_deterministic_algorithms(True)`` is set (torchmetrics then counts without it).

    With ``background=True`` the states are copied (and reduced across ranks) in event order and
    ``compute()`` runs in a worker thread on the copy, as for ``EpochMetric(background=True)``: values are
    published in order, and the engine waits for them before ``COMPLETED``.

    In a distributed job the states are reduced in ``compute()`` over ``ignite_async.distributed``'s
    process group (the metric's ``dist_sync_fn`` is set to one that uses its collectives, unless one
    was given). ``dist_sync_on_step`` has no effect: it applies to ``forward()``, and only ``update()`` is
    called. ``sync_on_compute=False`` keeps every rank's value its own.

    :param metric: a ``torchmetrics.Metric`` or ``torchmetrics.MetricCollection``.
    :param output_transform: turns the engine's output into the arguments of ``metric.update``.
    :param device: where the metric's states and the inputs go (``metric.to(device)``); None: where it is.
    :param background: compute in a worker thread when attached (see above).
    :param required_output_keys: the keys, in ``update``'s order, taken from a dict output; None: a dict
        output is refused (give ``output_transform``).
    :param metrics_result_mode: where a dict value goes in ``state.metrics`` (see :class:`Metric`): its items
        (``"flatten"``), the dict under ``name`` (``"named"``) or both; None: ``"flatten"`` for a collection,
        ``"both"`` for a single metric.
    :raises ImportError: without torchmetrics (``pip install 'ignite-async[metrics]'``).
    :raises TypeError: if ``metric`` is not a torchmetrics metric or collection.

    >>> import asyncio, torch
    >>> from torchmetrics.regression import MeanSquaredError
    >>> from ignite_async import Engine
    >>> evaluator = Engine(lambda e, batch: batch)
    >>> TorchMetric(MeanSquaredError()).attach(evaluator, "mse")
    >>> batches = [(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))]
    >>> asyncio.run(evaluator.run(batches)).metrics["mse"]
    5.0
    """

    def __init__(
        self,
        metric: TMMetric | MetricCollection,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device | None = None,
        *,
        background: bool = False,
        required_output_keys: tuple[str, ...] | None = ("y_pred", "y"),
        metrics_result_mode: ResultMode | None = None,
    ) -> None:
        tm = _torchmetrics()
        if not isinstance(metric, (tm.Metric, tm.MetricCollection)):
            hint = " (a metric of ignite_async is attached as it is)" if isinstance(metric, Metric) else ""
            raise TypeError(
                "TorchMetric wraps a torchmetrics.Metric or torchmetrics.MetricCollection, e.g. "
                f"TorchMetric(torchmetrics.classification.MulticlassAccuracy(num_classes=10)); got {metric!r}{hint}"
            )
        if required_output_keys is not None and (
            not isinstance(required_output_keys, tuple) or not all(isinstance(k, str) for k in required_output_keys)
        ):
            raise TypeError(f"required_output_keys must be a tuple of str or None, got {required_output_keys!r}")
        self.required_output_keys = required_output_keys
        self._collection = isinstance(metric, tm.MetricCollection)
        self.metric = metric
        members = [m for _, m in self._members()]
        if not members:
            raise ValueError("TorchMetric needs a MetricCollection with at least one metric")
        if device is None:
            device = members[0].device
        metric.to(device)
        for m in members:
            if m.dist_sync_fn is None:  # compute() reduces through ignite_async.distributed
                m.dist_sync_fn = _gather_all_tensors
        self._background = background
        self._pending: TaskHandle | None = None
        self._template: TMMetric | MetricCollection | None = None
        if background:
            # What a worker thread computes on: an empty copy, states loaded from each snapshot. Its states are
            # reduced already, so it never syncs (the collectives ran in event order).
            self._template = copy.deepcopy(metric)
            self._template.reset()
            for module in self._template.modules():
                if isinstance(module, tm.Metric):
                    module.distributed_available_fn = _never
        self._updates = 0
        if metrics_result_mode is None:
            metrics_result_mode = "flatten" if self._collection else "both"
        super().__init__(output_transform, device, metrics_result_mode=metrics_result_mode)

    def _members(self, metric: Any = None) -> Iterator[tuple[str, TMMetric]]:
        """Every torchmetrics metric in the tree, by module path ("" for the root): a collection's members, a
        wrapper's inner metrics (whose states are the wrapper's), and the wrappers (whose update counts count)."""
        metric_type = _torchmetrics().Metric
        for key, module in (self.metric if metric is None else metric).named_modules():
            if isinstance(module, metric_type):
                yield key, module

    def reset(self) -> None:
        self.metric.reset()
        self._updates = 0

    def update(self, output: Any) -> None:
        """Pass one batch's ``output`` to the metric's ``update`` (see the class for how it is unpacked)."""
        to_device = self._to_device
        if type(output) is tuple and len(output) == 2:  # (preds, target), the usual case: no generator
            self.metric.update(to_device(output[0]), to_device(output[1]))
        elif isinstance(output, (tuple, list)):
            self.metric.update(*[to_device(v) for v in output])
        else:
            self.metric.update(to_device(output))
        self._updates += 1

    def _to_device(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.device != self._device:
            return value.to(self._device)
        return value

    def compute(self) -> Any:
        """The metric's ``compute()`` (a collection's: a dict by member name), reduced across ranks.

        :raises NotComputableError: before any update since the last reset.
        """
        self._check_computable()
        return self.metric.compute()

    def _check_computable(self) -> None:
        if self._updates == 0:
            raise NotComputableError(f"TorchMetric({type(self.metric).__name__}) must be updated before it is computed")

    def state_dict(self) -> dict[str, Any]:
        """The metric's states (``add_state``'s, list states included) and update counts, copied.

        On every rank its own states: each rank saves and loads its own to resume a distributed run.
        """
        return {
            "updates": self._updates,
            "members": {
                key: {"update_count": m.update_count, "states": {n: _copy(v) for n, v in m.metric_state.items()}}
                for key, m in self._members()
            },
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue from ``state_dict`` (from :meth:`state_dict`); tensors move to this metric's device.

        :raises ValueError: if a member or a state of the metric is missing from ``state_dict``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"TorchMetric.load_state_dict takes a mapping, got {type(state_dict).__name__}")
        self._load(self.metric, state_dict, self._device)
        self._updates = int(state_dict["updates"])

    def _load(self, metric: Any, state_dict: Mapping[str, Any], device: torch.device) -> None:
        members = state_dict.get("members")
        if "updates" not in state_dict or not isinstance(members, Mapping):
            raise ValueError(
                f"TorchMetric.load_state_dict takes what state_dict() returns, got keys {sorted(state_dict)}"
            )
        ours = dict(self._members(metric))
        missing = [key for key in ours if key not in members]
        if missing:
            raise ValueError(f"TorchMetric.load_state_dict: the state lacks the metrics {missing}")
        for key, m in ours.items():
            lacking = [n for n in m.metric_state if n not in members[key]["states"]]
            if lacking:
                raise ValueError(f"TorchMetric.load_state_dict: the state of {key!r} lacks {lacking}")
        metric.reset()  # also forgets a cached value
        for key, m in ours.items():
            for n in m.metric_state:
                setattr(m, n, _copy(members[key]["states"][n], device))
            # torchmetrics saves no update count (its compute() warns at 0, and mean states are weighted by it),
            # and sets it nowhere but in update(): the one private field written here.
            m._update_count = int(members[key]["update_count"])

    # ------------------------------------------------------------------ attached to an engine

    def completed(self, engine: Engine, name: str) -> None:
        if not self._background:
            return self._publish(engine, name, self.compute())
        # The states reduced across ranks here, in event order; only compute() runs in the worker thread.
        snapshot = self._reduced_state()
        self._pending = engine.spawn(self._compute_and_publish, engine, name, snapshot, self._pending)

    def _reduced_state(self) -> dict[str, Any]:
        self._check_computable()
        members: dict[str, Any] = {}
        for key, m in self._members():
            # torchmetrics' own sync, with the metric's settings; a no-op in a single process.
            with m.sync_context(dist_sync_fn=m.dist_sync_fn, should_sync=m.sync_on_compute):
                states = {n: _copy(v) for n, v in m.metric_state.items()}
            members[key] = {"update_count": m.update_count, "states": states}
        return {"updates": self._updates, "members": members}

    def _compute_snapshot(self, snapshot: Mapping[str, Any]) -> Any:
        # A fresh copy per compute: computes of successive epochs may run in threads at the same time.
        worker = copy.deepcopy(self._template)
        self._load(worker, snapshot, self._device)
        return worker.compute()  # type: ignore[union-attr]

    async def _compute_and_publish(
        self, engine: Engine, name: str, snapshot: Mapping[str, Any], previous: TaskHandle | None
    ) -> None:
        # Waited for no longer than the grace period when the run is cancelled (a thread cannot be stopped).
        result = await run_sync(self._compute_snapshot, snapshot, grace=engine.cancel_grace_period)
        if previous is not None:
            await previous.wait()
        self._publish(engine, name, result)

    def _publish(self, engine: Engine, name: str, result: Any) -> None:
        if self._collection:
            # Its values, already named by the collection (prefix, postfix), each as a single result would be.
            result = {key: published_value(value) for key, value in result.items()}
        publish(engine, name, result, self._metrics_result_mode)
