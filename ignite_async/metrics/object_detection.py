"""COCO-style average precision and recall of an object detector, as pytorch-ignite 0.5.5 computes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch

from ignite_async.distributed.comm import all_reduce
from ignite_async.metrics.mean_average_precision import fp_precision, gather_last_dim, setup_thresholds
from ignite_async.metrics.metric import Metric
from ignite_async.metrics.metric_group import MetricGroup

__all__ = [
    "CommonObjectDetectionMetrics",
    "ObjectDetectionAvgPrecisionRecall",
    "box_area",
    "box_iou",
    "coco_tensor_list_to_dict_list",
]

AreaRange = Literal["small", "medium", "large", "all"]
# COCO's object sizes, in squared pixels: small < 32², medium < 96², large beyond (bounds inclusive, as in
# pytorch-ignite, so an area of exactly 32² is both small and medium).
_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0, 1e10),
    "small": (0, 1024),
    "medium": (1024, 9216),
    "large": (9216, 1e10),
}
# Values written into the IoU table: below any IoU, so that a max over it picks real overlaps first.
_NO_MATCH = -3
_IGNORED = -2  # added to an ignored target's IoUs: matched only when no regular target is left


def _upcast(t: torch.Tensor) -> torch.Tensor:
    # Products of half-precision or small-integer coordinates would overflow.
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """The areas of ``(N, 4)`` boxes given as ``(x1, y1, x2, y2)``.

    >>> box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
    tensor([6.])
    """
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes: torch.Tensor, targets: torch.Tensor, iscrowd: torch.Tensor | None = None) -> torch.Tensor:
    """The ``(N, M)`` intersections over union of ``(N, 4)`` boxes with ``(M, 4)`` targets.

    For a crowd target (``iscrowd``, ``(M,)`` booleans) the union is the box's own area, as in COCO: a box
    inside a crowd region overlaps it fully. An empty union gives 0.

    >>> box_iou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 1.0, 1.0]]))
    tensor([[0.3333, 0.2500]])
    """
    areas, target_areas = box_area(boxes), box_area(targets)
    top_left = torch.max(boxes[:, None, :2], targets[:, :2])
    bottom_right = torch.min(boxes[:, None, 2:], targets[:, 2:])
    sides = _upcast(bottom_right - top_left).clamp(min=0)
    inter = sides[:, :, 0] * sides[:, :, 1]
    union = areas[:, None] + target_areas - inter
    if iscrowd is not None:
        union = torch.where(iscrowd[None, :], areas[:, None].to(union.dtype), union)
    iou = inter / union
    return iou.where(~iou.isnan(), 0)


def coco_tensor_list_to_dict_list(output: tuple[Sequence[Any], Sequence[Any]]) -> tuple[list[Any], list[Any]]:
    """``(y_pred, y)`` given as lists of per-image tensors, as the lists of dicts the detection metrics take.

    A detection tensor is ``(N, 6)``: ``x1, y1, x2, y2, score, class``; a target tensor ``(M, 5)``
    (``x1, y1, x2, y2, class``) or ``(M, 6)`` (then ``iscrowd`` last). A list of dicts is left as it is. Use it
    as the metric's ``output_transform``. pytorch-ignite's function of this name writes the keys
    ``"confidence"`` and ``"class"``, which its metric then refuses; this one writes ``"scores"`` and
    ``"labels"`` (as ``torch.long``), and ``"iscrowd"`` as booleans.

    :raises ValueError: for a tensor of another width.

    >>> y_pred, y = coco_tensor_list_to_dict_list(([torch.tensor([[0.0, 0.0, 4.0, 4.0, 0.9, 2.0]])],
    ...                                            [torch.tensor([[0.0, 0.0, 4.0, 4.0, 2.0]])]))
    >>> y_pred[0]["labels"], y_pred[0]["scores"], sorted(y[0])
    (tensor([2]), tensor([0.9000]), ['bbox', 'labels'])
    """
    y_pred, y = output[0], output[1]

    def checked(t: torch.Tensor, widths: tuple[int, ...], label: str) -> torch.Tensor:
        if t.ndim != 2 or t.shape[1] not in widths:
            allowed = " or ".join(map(str, widths))
            raise ValueError(
                f"coco_tensor_list_to_dict_list: {label} tensors must be (N, {allowed}), got {tuple(t.shape)}"
            )
        return t

    preds: list[Any] = []
    for t in y_pred:
        if isinstance(t, torch.Tensor):
            t = checked(t, (6,), "y_pred")
            preds.append({"bbox": t[:, :4], "scores": t[:, 4], "labels": t[:, 5].long()})
        else:
            preds.append(t)
    targets: list[Any] = []
    for t in y:
        if isinstance(t, torch.Tensor):
            t = checked(t, (5, 6), "y")
            target = {"bbox": t[:, :4], "labels": t[:, 4].long()}
            if t.shape[1] == 6:
                target["iscrowd"] = t[:, 5].bool()
            targets.append(target)
        else:
            targets.append(t)
    return preds, targets


def _entries(output: Any, name: str) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
    if not isinstance(output, (tuple, list)) or len(output) < 2:
        raise ValueError(f"{name}.update takes (y_pred, y): two lists of per-image dicts, got {type(output).__name__}")
    y_pred, y = output[0], output[1]
    for label, entries in (("y_pred", y_pred), ("y", y)):
        if not isinstance(entries, (list, tuple)) or not all(isinstance(e, Mapping) for e in entries):
            raise TypeError(
                f"{name}: {label} must be a list of per-image dicts of tensors, got {type(entries).__name__}"
            )
    if len(y_pred) != len(y):
        raise ValueError(f"y_pred and y should have the same number of samples, given {len(y_pred)} and {len(y)}.")
    if len(y_pred) == 0:
        raise ValueError("y_pred and y should contain at least one sample.")
    return y_pred, y


def _tensor(entry: Mapping[str, Any], key: str, label: str, shape: tuple[int | None, ...], name: str) -> torch.Tensor:
    value = entry[key]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: {label}[{key!r}] must be a tensor, got {type(value).__name__}")
    if value.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape, strict=True)):
        want = "(N, 4)" if len(shape) == 2 else "(N,)"
        raise ValueError(f"{name}: {label}[{key!r}] must be {want}, got {tuple(value.shape)}")
    return value.detach()


class ObjectDetectionAvgPrecisionRecall(Metric):
    r"""COCO's mean average precision and recall of a detector over images: ``compute()`` gives ``(AP, AR)``.

    ``update((y_pred, y))`` takes two lists with one dict per image. ``y_pred``'s: ``"bbox"`` ``(N, 4)`` boxes
    ``(x1, y1, x2, y2)``, ``"scores"`` ``(N,)``, ``"labels"`` ``(N,)`` integer classes. ``y``'s: ``"bbox"``,
    ``"labels"`` and optionally ``"iscrowd"`` ``(M,)`` booleans. In each image, per class, the
    ``max_detections_per_image_per_class`` highest-scored detections are matched greedily, in score order, to
    the unmatched target of highest IoU at or above each IoU threshold. Crowd targets and targets outside
    ``area_range`` are ignored: a detection matched to one counts neither way, and a crowd target may match
    many. Average precision is precision made non-increasing, read at the ``rec_thresholds`` and averaged:
    :math:`\frac{1}{R}\sum_{k} \max(P_{k:})`; average recall is the final recall. Both are averaged over the
    IoU thresholds and the classes that have targets (pytorch-ignite's values: ``(-1.0, -1.0)`` when no class
    has any). Matching runs on the inputs' device without reading values back; the per-detection results are
    kept on ``device`` until ``compute()``.

    :param iou_thresholds: IoU thresholds (1-d, in [0, 1]); by default ``0.5, 0.55, ..., 0.95``.
    :param rec_thresholds: recall thresholds (1-d, in [0, 1]); by default ``0, 0.01, ..., 1``.
    :param num_classes: the number of classes; detections of other classes are left out.
    :param max_detections_per_image_per_class: the most confident detections kept per class and image.
    :param area_range: ``"all"``, ``"small"`` (area up to 32²), ``"medium"`` (32² to 96²) or ``"large"``.
    :param skip_unrolling: give ``update`` lists as they are (see :class:`Metric`).
    :raises ValueError: for arguments out of their domain; at ``update``, for lists of different lengths or
        empty, dicts lacking keys, tensors of wrong shapes, or (on the CPU) a target class outside
        ``[0, num_classes)``.
    :raises TypeError: at ``update``, for entries that are not dicts of tensors, or labels that are not integers.

    >>> import torch
    >>> metric = ObjectDetectionAvgPrecisionRecall(num_classes=2)
    >>> y_pred = [{"bbox": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
    ...            "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 1])}]
    >>> y = [{"bbox": torch.tensor([[1.0, 1.0, 10.0, 10.0]]), "labels": torch.tensor([0])}]
    >>> metric.update((y_pred, y))
    >>> [round(v, 4) for v in metric.compute()]
    [0.7, 0.7]
    """

    _state_attrs = ("_tps", "_fps", "_scores", "_y_pred_labels", "_y_true_count")

    def __init__(
        self,
        iou_thresholds: Sequence[float] | torch.Tensor | None = None,
        rec_thresholds: Sequence[float] | torch.Tensor | None = None,
        num_classes: int = 80,
        max_detections_per_image_per_class: int = 100,
        area_range: AreaRange = "all",
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        name = type(self).__name__
        for label, value in (
            ("num_classes", num_classes),
            ("max_detections_per_image_per_class", max_detections_per_image_per_class),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")
        if area_range not in _AREA_RANGES:
            raise ValueError(f"{name}: area_range must be one of {sorted(_AREA_RANGES)}, got {area_range!r}")
        self._num_classes = num_classes
        self._max_detections_per_image_per_class = max_detections_per_image_per_class
        self._area_range = area_range
        dev = torch.device(device)
        self._fp = fp_precision(dev)
        # The defaults as pytorch-ignite builds them (float32 linspace), so that thresholds compare the same.
        self._iou_thresholds = setup_thresholds(
            torch.linspace(0.5, 0.95, 10) if iou_thresholds is None else iou_thresholds, "iou_thresholds", dev, self._fp
        )
        self.rec_thresholds = setup_thresholds(
            torch.linspace(0, 1, 101) if rec_thresholds is None else rec_thresholds, "rec_thresholds", dev, self._fp
        )
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._tps: list[torch.Tensor] = []
        self._fps: list[torch.Tensor] = []
        self._scores: list[torch.Tensor] = []
        self._y_pred_labels: list[torch.Tensor] = []
        self._y_true_count = torch.zeros(self._num_classes, dtype=torch.long, device=self._device)

    def _in_area_range(self, boxes: torch.Tensor) -> torch.Tensor:
        low, high = _AREA_RANGES[self._area_range]
        areas = box_area(boxes)
        return (areas >= low) & (areas <= high)

    def update(self, output: Any) -> None:
        name = type(self).__name__
        y_pred, y = _entries(output, name)
        for pred, target in zip(y_pred, y, strict=True):
            for label, entry, keys in (
                ("y_pred", pred, ("bbox", "scores", "labels")),
                ("y", target, ("bbox", "labels")),
            ):
                missing = [k for k in keys if k not in entry]
                if missing:
                    raise ValueError(
                        f"{name}: {label} dicts need the keys {list(keys)}"
                        f"{' (and optionally iscrowd)' if label == 'y' else ''}, missing {missing}; given {list(entry)}"
                    )
        # Every image is checked before any is counted: a rejected update leaves the metric as it was.
        images = [self._checked(pred, target, name) for pred, target in zip(y_pred, y, strict=True)]
        for image in images:
            self._update_image(*image)

    def _checked(self, pred: Mapping[str, Any], target: Mapping[str, Any], name: str) -> tuple[torch.Tensor, ...]:
        """The image's tensors, detached, the targets' on their boxes' device: ``(boxes, scores, labels,
        target boxes, target labels, crowd, ignored)``."""
        num_classes = self._num_classes
        gt_boxes = _tensor(target, "bbox", "y", (None, 4), name)
        gt_labels = _tensor(target, "labels", "y", (gt_boxes.shape[0],), name)
        if gt_labels.is_floating_point() or gt_labels.dtype == torch.bool:
            raise TypeError(f"{name}: y['labels'] must be integer class indices (torch.long), got {gt_labels.dtype}")
        dev = gt_boxes.device
        crowd = (
            _tensor(target, "iscrowd", "y", (gt_boxes.shape[0],), name).to(dev).bool()
            if "iscrowd" in target
            else torch.zeros(gt_boxes.shape[0], dtype=torch.bool, device=dev)
        )
        gt_labels = gt_labels.to(dev)
        ignored = ~self._in_area_range(gt_boxes) | crowd
        # Checked only on the CPU: testing a GPU tensor's values would wait for the device. Ignored targets
        # are not counted, so their class is not checked (as in pytorch-ignite).
        if dev.type == "cpu":
            unknown = ~ignored & ((gt_labels < 0) | (gt_labels >= num_classes))
            if bool(unknown.any()):
                bad = gt_labels[unknown].tolist()
                raise ValueError(f"{name}: y['labels'] must lie in [0, num_classes={num_classes}), got {bad}")
        scores = _tensor(pred, "scores", "y_pred", (None,), name)
        n = scores.shape[0]
        boxes = _tensor(pred, "bbox", "y_pred", (n, 4), name)
        labels = _tensor(pred, "labels", "y_pred", (n,), name)
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError(f"{name}: y_pred['labels'] must be integer class indices (torch.long), got {labels.dtype}")
        return boxes.to(dev), scores.to(dev), labels.to(dev), gt_boxes, gt_labels, crowd, ignored

    def _update_image(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        crowd: torch.Tensor,
        ignored: torch.Tensor,
    ) -> None:
        num_classes, t_count = self._num_classes, self._iou_thresholds.numel()
        dev = gt_boxes.device
        counted = ~ignored & (gt_labels >= 0) & (gt_labels < num_classes)
        self._y_true_count.index_add_(
            0, gt_labels.clamp(0, num_classes - 1).to(self._device), counted.to(self._device, torch.long)
        )
        n = scores.shape[0]
        if n == 0:
            return
        # Class by class, most confident first (ties in input order): the order matching visits them in.
        order = torch.argsort(scores, stable=True, descending=True)
        order = order[torch.argsort(labels[order], stable=True)]
        labels, boxes, scores = labels[order], boxes[order], scores[order]
        rank_in_class = torch.arange(n, device=dev) - torch.searchsorted(labels, labels)
        # Detections beyond the per-class cap or of unknown classes stay, with class -1: they match nothing and
        # compute() leaves them out (dropping them here would read the mask back from the device).
        kept = (rank_in_class < self._max_detections_per_image_per_class) & (labels >= 0) & (labels < num_classes)
        in_range = self._in_area_range(boxes)
        if gt_boxes.shape[0] == 0:
            tp = torch.zeros((t_count, n), dtype=torch.uint8, device=dev)
            fp = in_range.to(torch.uint8).expand(t_count, n)
        else:
            tp, fp = self._match(boxes, labels, kept, in_range, gt_boxes, gt_labels, crowd, ignored)
        self._tps.append(tp.to(self._device, copy=True))
        self._fps.append(fp.to(self._device, copy=True))
        self._scores.append(scores.to(self._device, dtype=self._fp))
        self._y_pred_labels.append(torch.where(kept, labels, -1).to(self._device, dtype=torch.int32))

    def _match(
        self,
        boxes: torch.Tensor,
        labels: torch.Tensor,
        kept: torch.Tensor,
        in_range: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        crowd: torch.Tensor,
        ignored: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, N)`` true and false positives of the ``N`` detections at each of the ``T`` IoU thresholds."""
        dev = boxes.device
        thresholds = self._iou_thresholds.to(dev)
        ious = box_iou(boxes, gt_boxes, crowd)
        ious = ious.masked_fill((gt_labels[None, :] != labels[:, None]) | ~kept[:, None], _NO_MATCH)
        ious = ious.unsqueeze(-1).repeat(1, 1, thresholds.numel())
        ious = ious.masked_fill(ious < thresholds, _NO_MATCH)
        ious = ious + torch.where(ignored, _IGNORED, 0).to(ious.dtype)[None, :, None]
        num_gt = gt_boxes.shape[0]
        gt_index = torch.arange(num_gt, device=dev)[:, None]
        candidates: list[int] | range = range(boxes.shape[0])
        if dev.type == "cpu":
            # On the CPU reading values back costs nothing: visit only detections that overlap some target enough.
            candidates = (ious > _NO_MATCH).flatten(1).any(1).nonzero().flatten().tolist()
        for i in candidates:
            # Per threshold, the best target (the last one among equals, as pytorch-ignite picks it); a taken
            # regular target is taken from every other detection, a crowd target stays available.
            best, flipped_index = ious[i].flip(0).max(0)
            target = (num_gt - 1) - flipped_index
            takes = (best > _NO_MATCH) & ~crowd[target]
            taken = (gt_index == target) & takes
            ious.masked_fill_(taken, _NO_MATCH)
            ious[i] = torch.where(taken, best, ious[i])
        best_iou = ious.max(1).values
        tp = (best_iou >= 0).T.to(torch.uint8)
        fp = ((best_iou <= _NO_MATCH).T & in_range).to(torch.uint8)
        return tp, fp

    def precision_recall_table(self) -> torch.Tensor:
        """``(2, num_classes, T)``: average precision (``[0]``) and recall (``[1]``) per class and IoU threshold.

        A class without targets holds -1; one with targets but no detection, 0. Across ranks, every rank's
        detections and target counts are joined first (collectives: call it on every rank).
        """
        t_count, num_classes = self._iou_thresholds.numel(), self._num_classes
        counts = all_reduce(self._y_true_count)
        labels = gather_last_dim(self._y_pred_labels, (), torch.int32, self._device)
        tps = gather_last_dim(self._tps, (t_count,), torch.uint8, self._device)
        fps = gather_last_dim(self._fps, (t_count,), torch.uint8, self._device)
        scores = gather_last_dim(self._scores, (), self._fp, self._device)
        table = torch.full((2, num_classes, t_count), -1, dtype=self._fp, device=self._device)
        # Grouped by class (class -1 first), most confident first within a class, ties in update order.
        order = torch.argsort(scores, stable=True, descending=True)
        order = order[torch.argsort(labels[order], stable=True)]
        per_class = torch.bincount(labels.long() + 1, minlength=num_classes + 1).tolist()
        starts = [sum(per_class[: c + 1]) for c in range(num_classes)]
        for c, has_targets in enumerate(counts.tolist()):
            if has_targets == 0:
                continue
            n = per_class[c + 1]
            if n == 0:
                table[:, c] = 0.0
                continue
            picked = order[starts[c] : starts[c] + n]
            tp = tps[:, picked].cumsum(dim=-1).to(self._fp)
            fp = fps[:, picked].cumsum(dim=-1).to(self._fp)
            recall = tp / counts[c]
            predicted = tp + fp
            precision = tp / torch.where(predicted == 0, 1, predicted)
            table[0, c] = self._average_precision(recall, precision)
            table[1, c] = recall[:, -1]
        return table

    def _average_precision(self, recall: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
        """COCO's: the precision envelope (best precision at any higher recall), read at each recall
        threshold (0 beyond the highest recall reached), averaged over the thresholds."""
        device = precision.device
        # MPS has no cummax: the envelope is taken on the CPU there.
        flipped = precision.flip(-1) if device.type != "mps" else precision.flip(-1).cpu()
        envelope = flipped.cummax(dim=-1).values.to(device).flip(-1)
        thresholds = self.rec_thresholds.to(recall.dtype).repeat(recall.shape[0], 1)
        at = torch.searchsorted(recall.contiguous(), thresholds)
        beyond = at == recall.shape[-1]
        reached = envelope.take_along_dim(at.where(~beyond, 0), dim=-1).where(~beyond, 0)
        return reached.sum(dim=-1) / self.rec_thresholds.numel()

    def compute(self) -> tuple[float, float]:
        """``(AP, AR)`` averaged over the IoU thresholds and the classes with targets; ``(-1.0, -1.0)`` if none."""
        return _mean_ap_ar(self.precision_recall_table())


def _mean_ap_ar(table: torch.Tensor) -> tuple[float, float]:
    if bool((table == -1).all()):
        return -1.0, -1.0
    ap, ar = table[0], table[1]
    return float(ap[ap > -1].mean()), float(ar[ar > -1].mean())


class CommonObjectDetectionMetrics(MetricGroup):
    """The twelve COCO detection numbers, under pytorch-ignite's names, as one dict.

    ``AP@50..95`` and ``AR-100`` (IoU 0.5 to 0.95, up to 100 detections per class and image), ``AP@50`` and
    ``AP@75`` (one IoU threshold), ``AP-S``/``AR-S``, ``AP-M``/``AR-M``, ``AP-L``/``AR-L`` (small, medium,
    large objects) and ``AR-1``/``AR-10`` (at most 1 or 10 detections), each an
    :class:`ObjectDetectionAvgPrecisionRecall`; -1.0 where no class has targets. Attached, each name lands in
    ``state.metrics`` and the dict under the group's name. Inputs as for
    :class:`ObjectDetectionAvgPrecisionRecall`.

    :param num_classes: the number of classes.
    :param skip_unrolling: give ``update`` lists as they are (see :class:`Metric`).

    >>> import torch
    >>> metrics = CommonObjectDetectionMetrics(num_classes=2)
    >>> y_pred = [{"bbox": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "scores": torch.tensor([0.9]),
    ...            "labels": torch.tensor([0])}]
    >>> y = [{"bbox": torch.tensor([[1.0, 1.0, 10.0, 10.0]]), "labels": torch.tensor([0])}]
    >>> metrics.update((y_pred, y))
    >>> values = metrics.compute()
    >>> round(values["AP@50..95"], 4), values["AP@50"], values["AP-L"]
    (0.7, 1.0, -1.0)
    """

    def __init__(
        self,
        num_classes: int = 80,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = True,
    ) -> None:
        def member(**kwargs: Any) -> ObjectDetectionAvgPrecisionRecall:
            return ObjectDetectionAvgPrecisionRecall(num_classes=num_classes, device=device, **kwargs)

        # Set before the group's constructor, which resets every part.
        self.ap_50_95 = member()
        super().__init__(
            {
                "S": member(area_range="small"),
                "M": member(area_range="medium"),
                "L": member(area_range="large"),
                "1": member(max_detections_per_image_per_class=1),
                "10": member(max_detections_per_image_per_class=10),
            },
            output_transform,
            skip_unrolling,
        )

    def reset(self) -> None:
        super().reset()
        self.ap_50_95.reset()

    def update(self, output: Any) -> None:
        # The full-range metric first: its input checks reject bad input before any part has taken it.
        self.ap_50_95.update(output)
        super().update(output)

    def compute(self) -> dict[str, float]:
        table = self.ap_50_95.precision_recall_table()
        ap_50, ap_75 = table[0, :, 0], table[0, :, 5]
        if bool((ap_50 == -1).all()):
            ap_50_95 = ar_100 = at_50 = at_75 = -1.0
        else:
            at_50, at_75 = float(ap_50[ap_50 > -1].mean()), float(ap_75[ap_75 > -1].mean())
            ap_50_95, ar_100 = _mean_ap_ar(table)
        parts = super().compute()
        return {
            "AP@50..95": ap_50_95,
            "AR-100": ar_100,
            "AP@50": at_50,
            "AP@75": at_75,
            "AP-S": parts["S"][0],
            "AR-S": parts["S"][1],
            "AP-M": parts["M"][0],
            "AR-M": parts["M"][1],
            "AP-L": parts["L"][0],
            "AR-L": parts["L"][1],
            "AR-1": parts["1"][1],
            "AR-10": parts["10"][1],
        }

    def state_dict(self) -> dict[str, Any]:
        """The parts' states: ``{"metrics": {name: state}, "ap_50_95": state}``."""
        return {"metrics": super().state_dict(), "ap_50_95": self.ap_50_95.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if not isinstance(state_dict, Mapping) or "metrics" not in state_dict or "ap_50_95" not in state_dict:
            raise ValueError(
                "CommonObjectDetectionMetrics.load_state_dict takes its own state_dict(), with 'metrics' and 'ap_50_95'"
            )
        super().load_state_dict(state_dict["metrics"])
        self.ap_50_95.load_state_dict(state_dict["ap_50_95"])
