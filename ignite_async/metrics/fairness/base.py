"""A metric computed per subgroup of the samples, and the largest gap between subgroups."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ignite_async.metrics._classification import ClassificationMetric
from ignite_async.metrics.metric import Metric, NotComputableError

__all__ = ["ClassificationSubgroupDifference", "SubgroupDifference", "SubgroupMetric"]


class _SubgroupBase(Metric):
    """Splits each ``(y_pred, y, group_labels)`` batch by group and updates one copy of ``base_metric`` per group."""

    required_output_keys = ("y_pred", "y", "group_labels")

    def __init__(
        self,
        base_metric: Metric,
        groups: Sequence[Any],
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        name = type(self).__name__
        if not isinstance(base_metric, Metric):
            raise TypeError(f"{name}: base_metric must be a Metric, got {type(base_metric).__name__}")
        if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
            raise TypeError(f"{name}: groups must be a sequence of group identifiers, got {groups!r}")
        if len(groups) == 0:
            raise ValueError(f"{name}: groups is empty; give the identifiers found in group_labels, e.g. [0, 1]")
        self._base_metric = base_metric
        self._user_groups = list(groups)
        # One independent copy per group (a repeated identifier is one group), in the order given.
        self._metrics: dict[Any, Metric] = {g: copy.deepcopy(base_metric) for g in self._user_groups}
        super().__init__(output_transform, device)

    def reset(self) -> None:
        for metric in self._metrics.values():
            metric.reset()

    def update(self, output: Any) -> None:
        name = type(self).__name__
        if not isinstance(output, (tuple, list)) or len(output) < 3:
            got = f"{len(output)} items" if isinstance(output, (tuple, list)) else type(output).__name__
            raise ValueError(f"{name}.update takes (y_pred, y, group_labels), got {got}")
        if not all(isinstance(t, torch.Tensor) for t in output[:3]):
            kinds = ", ".join(type(t).__name__ for t in output[:3])
            raise TypeError(f"{name}.update takes tensors (y_pred, y, group_labels), got {kinds}")
        y_pred, y, group_labels = (t.detach() for t in output[:3])
        if y_pred.ndim == 0 or y.ndim == 0 or group_labels.ndim == 0:
            raise ValueError(f"{name}: y_pred, y and group_labels must have a batch dimension, got 0-d tensors")
        if not y_pred.shape[0] == y.shape[0] == group_labels.shape[0]:
            raise ValueError(
                f"{name}: y_pred, y, and group_labels must have the same batch size, got {tuple(y_pred.shape)}, "
                f"{tuple(y.shape)} and {tuple(group_labels.shape)}"
            )
        masks = [group_labels == g for g in self._metrics]
        # One read-back for all groups (indexing by a mask reads back anyway) rather than one per group.
        present = torch.stack([m.any() for m in masks]).tolist()
        for metric, mask, seen in zip(self._metrics.values(), masks, present, strict=True):
            if seen:
                metric.update((y_pred[mask], y[mask]))

    def _compute_groups(self) -> dict[Any, Any]:
        results: dict[Any, Any] = {}
        for g, metric in self._metrics.items():
            try:
                results[g] = metric.compute()
            except NotComputableError:
                continue  # a group without samples has no value, as in pytorch-ignite
        return results

    def state_dict(self) -> dict[str, Any]:
        """Each group's metric state under ``"_metrics"``, keyed by ``str(group)`` (pytorch-ignite's layout)."""
        state = super().state_dict()
        state["_metrics"] = {str(g): m.state_dict() for g, m in self._metrics.items()}
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load each group's metric from ``state_dict["_metrics"]``, matched by ``str(group)``.

        :raises ValueError: if ``"_metrics"`` is missing.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict takes a mapping, got {type(state_dict).__name__}")
        rest = dict(state_dict)
        if "_metrics" not in rest:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state lacks ['_metrics']")
        per_group = rest.pop("_metrics")
        super().load_state_dict(rest)
        by_name = {str(g): m for g, m in self._metrics.items()}
        for key, saved in per_group.items():
            if key in by_name:  # a group this metric does not have is skipped, as in pytorch-ignite
                by_name[key].load_state_dict(saved)


class SubgroupMetric(_SubgroupBase):
    """``base_metric`` computed on each group's samples: ``{group: value}`` for the groups that had samples.

    ``update`` takes ``(y_pred, y, group_labels)`` or ``{"y_pred": ..., "y": ..., "group_labels": ...}``, with
    ``group_labels`` of ``(N,)``; ``base_metric`` is copied for each of ``groups``.

    :param base_metric: the metric to compute per group (copied, never updated itself).
    :param groups: the group identifiers, as found in ``group_labels``.
    :param output_transform: the engine's output to ``(y_pred, y, group_labels)``.
    :param device: where this metric lives (the copies keep ``base_metric``'s device).
    :raises TypeError: if ``base_metric`` is not a Metric.
    :raises ValueError: if ``groups`` is empty; in ``update``, for batch sizes that differ.

    >>> import torch
    >>> from ignite_async.metrics import Accuracy
    >>> metric = SubgroupMetric(Accuracy(), groups=[0, 1])
    >>> metric.update((torch.tensor([1, 0, 1, 1]), torch.tensor([1, 1, 1, 0]), torch.tensor([0, 0, 1, 1])))
    >>> metric.compute()
    {0: 0.5, 1: 0.5}
    """

    def compute(self) -> dict[Any, Any]:
        """``{group: value}`` for each group that had samples."""
        return self._compute_groups()


class SubgroupDifference(_SubgroupBase):
    """The largest gap (max - min) in ``base_metric`` between groups; for tensor values, the largest gap of any
    component.

    :param base_metric: the metric to compute per group (copied, never updated itself).
    :param groups: the group identifiers, as found in ``group_labels``.
    :param output_transform: the engine's output to ``(y_pred, y, group_labels)``.
    :param device: where this metric lives.
    :raises TypeError: if ``base_metric`` is not a Metric.
    :raises ValueError: if ``groups`` is empty; in ``update``, for batch sizes that differ.

    >>> import torch
    >>> from ignite_async.metrics import Accuracy
    >>> metric = SubgroupDifference(Accuracy(), groups=[0, 1])
    >>> metric.update((torch.tensor([1, 1, 1, 1]), torch.tensor([1, 1, 1, 0]), torch.tensor([0, 0, 1, 1])))
    >>> metric.compute()
    0.5
    """

    def compute(self) -> float:
        """The largest difference between two groups' values.

        :raises NotComputableError: before any update, or while fewer than two groups had samples.
        """
        results = self._compute_groups()
        if not results:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed")
        if len(results) < 2:
            raise NotComputableError(
                f"{type(self).__name__} needs samples of at least two of its groups to compare them; only group "
                f"{next(iter(results))!r} had samples so far"
            )
        values = list(results.values())
        if all(isinstance(v, torch.Tensor) for v in values):
            stacked = torch.stack(values)
            return float((stacked.max(dim=0).values - stacked.min(dim=0).values).max())
        return float(max(values) - min(values))


class ClassificationSubgroupDifference(SubgroupDifference):
    """A :class:`SubgroupDifference` of a classification metric that the subclass names as ``_base_metric_class``
    (built with ``is_multilabel`` and ``device``), as pytorch-ignite's ``SubgroupAccuracyDifference`` and
    ``DemographicParityDifference``.

    :param groups: the group identifiers, as found in ``group_labels``.
    :param is_multilabel: ``y_pred`` and ``y`` are ``(N, C, ...)`` 0s and 1s.
    :param output_transform: the engine's output to ``(y_pred, y, group_labels)``.
    :param device: where the counts live.
    :raises ValueError: if ``groups`` is empty; in ``update``, for batch sizes that differ.

    >>> import torch
    >>> from ignite_async.metrics import Accuracy
    >>> class AccuracyGap(ClassificationSubgroupDifference):
    ...     _base_metric_class = Accuracy
    >>> metric = AccuracyGap(groups=[0, 1])
    >>> metric.update((torch.tensor([1, 1, 1, 1]), torch.tensor([1, 1, 1, 0]), torch.tensor([0, 0, 1, 1])))
    >>> metric.compute()
    0.5
    """

    _base_metric_class: type[ClassificationMetric]

    def __init__(
        self,
        groups: Sequence[Any],
        is_multilabel: bool = False,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        base_metric = self._base_metric_class(is_multilabel=is_multilabel, device=device)
        super().__init__(base_metric, groups, output_transform, device)
