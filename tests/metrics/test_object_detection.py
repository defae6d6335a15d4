"""ObjectDetectionAvgPrecisionRecall and CommonObjectDetectionMetrics: pytorch-ignite 0.5.5's COCO values."""

from __future__ import annotations

import importlib
import json
import random
import sys
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.distributed import Parallel
from ignite_async.metrics.mean_average_precision import MeanAveragePrecision
from ignite_async.metrics.object_detection import (
    CommonObjectDetectionMetrics,
    ObjectDetectionAvgPrecisionRecall,
    box_iou,
    coco_tensor_list_to_dict_list,
)
from tests.metrics._oracle import assert_close, check_attached, check_direct, check_state_round_trip, plain

# pytorch-ignite's gather helper warns about its own indexing in torch >= 2.9, even in a single process.
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence for multidimensional indexing")

Image = dict[str, torch.Tensor]
Batch = tuple[list[Image], list[Image]]


def _upcast(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _area(b: torch.Tensor) -> torch.Tensor:
    b = _upcast(b)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    corner_low = torch.max(a[:, None, :2], b[:, :2])
    corner_high = torch.min(a[:, None, 2:], b[:, 2:])
    wh = _upcast(corner_high - corner_low).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter, _area(a)[:, None] + _area(b) - inter


@pytest.fixture(autouse=True)
def torchvision_for_the_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytorch-ignite's detection metric imports two box helpers from torchvision, which this project does not
    depend on: where torchvision is missing, the oracle gets a stand-in written from their definitions."""
    try:
        importlib.import_module("torchvision.ops.boxes")
    except ImportError:
        boxes = types.ModuleType("torchvision.ops.boxes")
        boxes.box_area = _area  # type: ignore[attr-defined]
        boxes._box_inter_union = _inter_union  # type: ignore[attr-defined]
        ops = types.ModuleType("torchvision.ops")
        ops.boxes = boxes  # type: ignore[attr-defined]
        vision = types.ModuleType("torchvision")
        vision.ops = ops  # type: ignore[attr-defined]
        for name, module in (("torchvision", vision), ("torchvision.ops", ops), ("torchvision.ops.boxes", boxes)):
            monkeypatch.setitem(sys.modules, name, module)


def _boxes(g: torch.Generator, n: int) -> torch.Tensor:
    # Sides from 1 to 121 pixels: small (< 32²), medium and large objects all occur.
    corner = torch.rand(n, 2, generator=g) * 150
    return torch.cat([corner, corner + torch.rand(n, 2, generator=g) * 120 + 1], dim=1)


def detection_batches(seed: int, classes: int, images: int = 3, batches: int = 3) -> list[Batch]:
    """Per image 0 to 6 targets (some crowd) and 0 to 12 detections, most near a target and of its class, with
    scores rounded to one decimal so that many tie."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    out = []
    for _ in range(batches):
        y_pred, y = [], []
        for _ in range(images):
            n_gt, n_det = rng.choice([0, 1, 3, 6]), rng.choice([0, 2, 5, 12])
            gt_boxes, gt_labels = _boxes(g, n_gt), torch.randint(0, classes, (n_gt,), generator=g)
            boxes, labels = _boxes(g, n_det), torch.randint(0, classes, (n_det,), generator=g)
            if n_gt and n_det:
                source = torch.randint(0, n_gt, (n_det,), generator=g)
                near = torch.rand(n_det, generator=g) < 0.7
                boxes = torch.where(near[:, None], gt_boxes[source] + torch.randn(n_det, 4, generator=g) * 4, boxes)
                labels = torch.where(near, gt_labels[source], labels)
            y_pred.append({"bbox": boxes, "scores": torch.rand(n_det, generator=g).round(decimals=1), "labels": labels})
            target = {"bbox": gt_boxes, "labels": gt_labels}
            if rng.random() < 0.6:
                target["iscrowd"] = torch.rand(n_gt, generator=g) < 0.25
            y.append(target)
        out.append((y_pred, y))
    return out


OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "top 2": {"max_detections_per_image_per_class": 2},
    "small": {"area_range": "small"},
    "medium": {"area_range": "medium"},
    "large": {"area_range": "large"},
    "thresholds": {"iou_thresholds": [0.75, 0.3], "rec_thresholds": torch.tensor([0.2, 0.9, 0.5])},
}
OURS = type(
    "ours",
    (),
    {
        "ObjectDetectionAvgPrecisionRecall": ObjectDetectionAvgPrecisionRecall,
        "CommonObjectDetectionMetrics": CommonObjectDetectionMetrics,
    },
)


def build(lib: Any, option: str, classes: int) -> Any:
    return lib.ObjectDetectionAvgPrecisionRecall(num_classes=classes, **OPTIONS[option])


def build_common(lib: Any, classes: int) -> Any:
    return lib.CommonObjectDetectionMetrics(num_classes=classes)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("option", list(OPTIONS))
def test_values_equal_ignites(option: str, seed: int) -> None:
    classes = 2 + seed
    check_direct(build(OURS, option, classes), build(ig, option, classes), detection_batches(seed, classes))


@pytest.mark.parametrize("seed", range(2))
def test_common_metrics_equal_ignites(seed: int) -> None:
    ours, theirs = CommonObjectDetectionMetrics(num_classes=3), ig.CommonObjectDetectionMetrics(num_classes=3)
    batches = detection_batches(10 + seed, 3)
    check_direct(ours, theirs, batches)
    assert list(ours.compute()) == list(theirs.compute())  # the names, in pytorch-ignite's order


def test_labels_outside_the_classes_and_no_targets() -> None:
    # Detections of class 5 (beyond num_classes) are left out; class 1 has no target (left out of the mean).
    y_pred = [
        {
            "bbox": torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]),
            "scores": torch.tensor([0.5, 0.9, 0.8]),
            "labels": torch.tensor([0, 5, 1]),
        }
    ]
    y = [{"bbox": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([0])}]
    ours = ObjectDetectionAvgPrecisionRecall(num_classes=3)
    check_direct(ours, ig.ObjectDetectionAvgPrecisionRecall(num_classes=3), [(y_pred, y)])
    assert ours.compute() == (1.0, 1.0)


def test_empty_inputs() -> None:
    no_targets = [{"bbox": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    no_detections = [{"bbox": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    some = [{"bbox": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}]
    target = [{"bbox": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([1])}]
    cases = {
        "nothing at all": [(no_detections, no_targets)],
        "detections without targets": [(some, no_targets)],
        "targets without detections": [(no_detections, target)],
        "mixed": [(no_detections, target), (some, no_targets), (some, target)],
    }
    for batches in cases.values():
        check_direct(
            ObjectDetectionAvgPrecisionRecall(num_classes=2),
            ig.ObjectDetectionAvgPrecisionRecall(num_classes=2),
            batches,
        )
        check_direct(
            CommonObjectDetectionMetrics(num_classes=2), ig.CommonObjectDetectionMetrics(num_classes=2), batches
        )
    untouched = ObjectDetectionAvgPrecisionRecall(num_classes=2)
    assert untouched.compute() == (-1.0, -1.0)  # pytorch-ignite's value before any update
    assert untouched.compute() == ig.ObjectDetectionAvgPrecisionRecall(num_classes=2).compute()


def test_crowd_target_absorbs_detections() -> None:
    # Two detections inside one crowd region: neither counts as a false positive, and the crowd is no target.
    y_pred = [
        {
            "bbox": torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0], [20.0, 20.0, 30.0, 30.0]]),
            "scores": torch.tensor([0.9, 0.8, 0.7]),
            "labels": torch.tensor([0, 0, 0]),
        }
    ]
    y = [
        {
            "bbox": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
            "labels": torch.tensor([0, 0]),
            "iscrowd": torch.tensor([True, False]),
        }
    ]
    ours = ObjectDetectionAvgPrecisionRecall(num_classes=1)
    check_direct(ours, ig.ObjectDetectionAvgPrecisionRecall(num_classes=1), [(y_pred, y)])
    assert ours.compute() == (1.0, 1.0)


def test_box_iou() -> None:
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    expected = torch.tensor([[1 / 3, 0.25], [0.0, 0.0]])
    assert torch.allclose(box_iou(boxes, targets), expected)
    crowd = box_iou(boxes, targets, torch.tensor([False, True]))
    assert torch.allclose(crowd, torch.tensor([[1 / 3, 1.0], [0.0, 0.0]]))  # a crowd's union is the box's area


@pytest.mark.anyio
async def test_attached_like_ignite() -> None:
    await check_attached(lambda ours: build(OURS if ours else ig, "default", 3), detection_batches(20, 3, images=2))


@pytest.mark.anyio
async def test_common_metrics_attached_like_ignite() -> None:
    await check_attached(
        lambda ours: build_common(OURS if ours else ig, 2),
        detection_batches(21, 2, images=2, batches=2),
    )


def test_state_round_trip() -> None:
    check_state_round_trip(lambda: build(OURS, "top 2", 3), detection_batches(30, 3))
    check_state_round_trip(lambda: CommonObjectDetectionMetrics(num_classes=3), detection_batches(31, 3, batches=2))


def test_state_rejects_foreign_state() -> None:
    with pytest.raises(ValueError, match="'metrics' and 'ap_50_95'"):
        CommonObjectDetectionMetrics(num_classes=2).load_state_dict({"S": {}})
    with pytest.raises(ValueError, match="lacks"):
        ObjectDetectionAvgPrecisionRecall(num_classes=2).load_state_dict({"_tps": []})


def _image(**changes: Any) -> Batch:
    pred = {"bbox": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
    target = {"bbox": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([1])}
    for key, value in changes.items():
        entry, _, field = key.partition("__")
        chosen = pred if entry == "pred" else target
        if value is None:
            del chosen[field]
        else:
            chosen[field] = value
    return [pred], [target]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        ObjectDetectionAvgPrecisionRecall(num_classes=0)
    with pytest.raises(ValueError, match="max_detections_per_image_per_class"):
        ObjectDetectionAvgPrecisionRecall(max_detections_per_image_per_class=0)
    with pytest.raises(ValueError, match="area_range must be one of"):
        ObjectDetectionAvgPrecisionRecall(area_range="tiny")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="iou_thresholds values should be between 0 and 1"):
        ObjectDetectionAvgPrecisionRecall(iou_thresholds=[0.5, 1.2])
    with pytest.raises(ValueError, match="rec_thresholds should hold at least one value"):
        ObjectDetectionAvgPrecisionRecall(rec_thresholds=[])


def test_bad_input() -> None:
    metric = ObjectDetectionAvgPrecisionRecall(num_classes=3)
    pred, target = _image()
    with pytest.raises(ValueError, match="same number of samples"):
        metric.update((pred, target + target))
    with pytest.raises(ValueError, match="at least one sample"):
        metric.update(([], []))
    with pytest.raises(ValueError, match="takes \\(y_pred, y\\)"):
        metric.update(pred)
    with pytest.raises(TypeError, match="list of per-image dicts"):
        metric.update((pred, [torch.zeros(1, 5)]))
    with pytest.raises(ValueError, match=r"missing \['scores'\]"):
        metric.update(_image(pred__scores=None))
    with pytest.raises(ValueError, match=r"missing \['bbox'\]"):
        metric.update(_image(target__bbox=None, target__boxes=torch.zeros(1, 4)))
    with pytest.raises(ValueError, match=r"y_pred\['bbox'\] must be \(N, 4\)"):
        metric.update(_image(pred__bbox=torch.zeros(1, 5)))
    with pytest.raises(ValueError, match=r"y\['labels'\] must be \(N,\)"):
        metric.update(_image(target__labels=torch.tensor([1, 2])))
    with pytest.raises(TypeError, match="integer class indices"):
        metric.update(_image(pred__labels=torch.tensor([1.0])))
    with pytest.raises(ValueError, match=r"must lie in \[0, num_classes=3\)"):
        metric.update(_image(target__labels=torch.tensor([3])))
    # Nothing of the rejected updates was kept.
    assert metric.compute() == (-1.0, -1.0)
    # A crowd (ignored) target of an unknown class is accepted, as pytorch-ignite accepts it.
    metric.update(_image(target__labels=torch.tensor([7]), target__iscrowd=torch.tensor([True])))
    assert_close(metric.compute(), (-1.0, -1.0))


def test_updates_never_read_a_value_back() -> None:
    # Meta tensors have shapes but no values: a read-back (.item(), bool(), a boolean mask's nonzero) raises
    # there, as on a GPU it would wait for the device. Empty detections and empty targets included.
    def on_meta(batch: Batch) -> Batch:
        return tuple([{k: v.to("meta") for k, v in e.items()} for e in entries] for entries in batch)  # type: ignore[return-value]

    metric = ObjectDetectionAvgPrecisionRecall(num_classes=3, device="meta")
    group = CommonObjectDetectionMetrics(num_classes=3, device="meta")
    for batch in detection_batches(40, 3):
        metric.update(on_meta(batch))
        group.update(on_meta(batch))
    assert len(metric.state_dict()["_tps"]) > 0
    with pytest.raises(Exception, match="meta"):  # the proof that a read-back would have failed
        torch.empty((), device="meta").item()


def _rank_values(local_rank: int, out: Path) -> None:
    """On each of two ranks: every other batch; each metric computed over both ranks' batches."""
    batches = detection_batches(50, 3, batches=4)
    scores = _score_batches()
    detection, group, average_precision = (
        ObjectDetectionAvgPrecisionRecall(num_classes=3),
        CommonObjectDetectionMetrics(num_classes=3),
        MeanAveragePrecision(class_mean=None),
    )
    for batch in batches[local_rank::2]:
        detection.update(batch)
        group.update(batch)
    for pair in scores[local_rank::2]:
        average_precision.update(pair)
    values = {"detection": detection.compute(), "group": group.compute(), "map": plain(average_precision.compute())}
    (out / f"rank{local_rank}.json").write_text(json.dumps(values))


def _score_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(51)
    return [
        (torch.rand(n, 3, generator=g).round(decimals=1), torch.randint(0, 3, (n,), generator=g)) for n in (5, 0, 7)
    ]


def test_two_ranks_compute_the_value_of_all_the_data(tmp_path: Path) -> None:
    # Rank 1 holds one batch of scores, and of them an empty one: every rank joins each gather all the same.
    with Parallel("gloo", nproc_per_node=2, timeout=timedelta(seconds=60)) as parallel:
        parallel.run(_rank_values, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0] == ranks[1]
    batches, scores = detection_batches(50, 3, batches=4), _score_batches()
    in_rank_order = batches[0::2] + batches[1::2]  # what the gathers concatenate, so that tied scores agree too
    detection: Any = ig.ObjectDetectionAvgPrecisionRecall(num_classes=3)
    group: Any = ig.CommonObjectDetectionMetrics(num_classes=3)
    average_precision: Any = ig.MeanAveragePrecision(class_mean=None)
    for batch in in_rank_order:
        detection.update(batch)
        group.update(batch)
    for pair in scores[0::2] + scores[1::2]:
        if pair[0].shape[0]:  # pytorch-ignite cannot take an empty batch
            average_precision.update(pair)
    assert_close(ranks[0]["detection"], detection.compute())
    assert_close(ranks[0]["group"], group.compute())
    assert_close(ranks[0]["map"], average_precision.compute())


def test_tensor_lists_convert_to_what_the_metric_takes() -> None:
    batches = detection_batches(60, 3)
    as_dicts = ObjectDetectionAvgPrecisionRecall(num_classes=3)
    as_tensors = ObjectDetectionAvgPrecisionRecall(num_classes=3, output_transform=coco_tensor_list_to_dict_list)
    for y_pred, y in batches:
        as_dicts.update((y_pred, y))
        tensors = (
            [torch.cat([p["bbox"], p["scores"][:, None], p["labels"][:, None].float()], dim=1) for p in y_pred],
            [
                torch.cat(
                    [t["bbox"], t["labels"][:, None].float()]
                    + ([t["iscrowd"][:, None].float()] if "iscrowd" in t else []),
                    dim=1,
                )
                for t in y
            ],
        )
        as_tensors.update(coco_tensor_list_to_dict_list(tensors))
    assert as_tensors.compute() == as_dicts.compute()
    unchanged = coco_tensor_list_to_dict_list(batches[0])
    assert unchanged[0][0] is batches[0][0][0]
    with pytest.raises(ValueError, match=r"y tensors must be \(N, 5 or 6\)"):
        coco_tensor_list_to_dict_list(([torch.zeros(1, 6)], [torch.zeros(1, 4)]))
