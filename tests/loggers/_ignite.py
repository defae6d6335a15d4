"""pytorch-ignite's lookup of ``metric_names``, the reference for loggers' and ProgressBar's."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine as IgniteEngine
from ignite.handlers.base_logger import BaseOutputHandler


class _Handler(BaseOutputHandler):
    def __call__(self, engine: Any, logger: Any, event_name: Any) -> None:  # pragma: no cover - never fired
        raise NotImplementedError


def ignite_lookup(metrics: Mapping[str, Any], names: list[str]) -> tuple[dict[str, Any], list[warnings.WarningMessage]]:
    """What pytorch-ignite's output handlers log of ``metrics`` for ``names``, and the warnings they give."""
    engine = IgniteEngine(lambda e, b: None)
    engine.state.metrics = dict(metrics)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logged = _Handler("tag", metric_names=names)._setup_output_metrics_state_attrs(engine, key_tuple=False)
    return {key.split("/", 1)[1]: value for key, value in logged.items()}, caught
