"""Per-class precision, recall and F-beta, with their macro averages, as one report."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.fbeta import Fbeta
from ignite_async.metrics.metric import ResultMode
from ignite_async.metrics.metrics_lambda import MetricsLambda
from ignite_async.metrics.precision_recall import Precision, Recall

__all__ = ["ClassificationReport"]


def ClassificationReport(
    beta: int = 1,
    output_dict: bool = False,
    output_transform: Callable[[Any], Any] = lambda x: x,
    device: str | torch.device = "cpu",
    is_multilabel: bool = False,
    labels: list[str] | None = None,
    metrics_result_mode: ResultMode = "both",
) -> MetricsLambda:
    """Precision, recall and ``f{beta}-score`` per class (keyed by ``labels[i]`` or ``str(i)``) and their
    ``"macro avg"``: a dict with ``output_dict=True``, else its JSON text.

    :param labels: names of the classes, in class order.
    :param metrics_result_mode: where an attached dict report goes in ``state.metrics``: its items
        (``"flatten"``), under the metric's name (``"named"``), or both.
    :raises ValueError: for a bad ``metrics_result_mode``; at ``compute``, for binary data (which
        pytorch-ignite cannot report either) or fewer ``labels`` than classes.

    >>> import torch
    >>> report = ClassificationReport(output_dict=True)
    >>> report.update((torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1])))
    >>> {k: round(v, 4) for k, v in report.compute()["1"].items()}
    {'precision': 1.0, 'recall': 0.5, 'f1-score': 0.6667}
    """
    precision = Precision(output_transform, average=False, is_multilabel=is_multilabel, device=device)
    recall = Recall(output_transform, average=False, is_multilabel=is_multilabel, device=device)
    fbeta = Fbeta(beta, average=False, precision=precision, recall=recall)
    score = f"f{beta}-score"

    def report(
        r: torch.Tensor, p: torch.Tensor, f: torch.Tensor, mean_r: Any, mean_p: Any, mean_f: Any
    ) -> dict[str, Any] | str:
        if p.ndim == 0:  # pytorch-ignite fails here too, with "iteration over a 0-d tensor"
            raise ValueError(
                "ClassificationReport: binary data has no classes to report on; give y_pred as (N, 2) scores "
                "(multiclass) or use is_multilabel=True"
            )
        if labels and len(labels) < len(p):
            raise ValueError(f"ClassificationReport: {len(labels)} labels given for {len(p)} classes")
        rows: dict[str, Any] = {
            (labels[i] if labels else str(i)): {
                "precision": float(p[i]),
                "recall": float(r[i]),
                score: float(f[i]),
            }
            for i in range(len(p))
        }
        rows["macro avg"] = {"precision": float(mean_p), "recall": float(mean_r), score: float(mean_f)}
        return rows if output_dict else json.dumps(rows)

    return MetricsLambda(
        report,
        recall,
        precision,
        fbeta,
        recall.mean(),
        precision.mean(),
        fbeta.mean(),
        metrics_result_mode=metrics_result_mode,
    )
