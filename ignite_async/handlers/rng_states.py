"""The random number generators' states, as an object a Checkpoint can save and restore."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["RNGStates"]


class RNGStates:
    """Python's, NumPy's and torch's (CPU and CUDA) generator states, with ``state_dict``/``load_state_dict``.

    Put it in a :class:`~ignite_async.handlers.Checkpoint`'s ``to_save`` so that a resumed run draws the same
    random numbers (dropout masks, shuffles, augmentations) as an uninterrupted one. The state is held in
    plain types and tensors only, so checkpoints load with ``torch.load(weights_only=True)``.

    >>> import random
    >>> from ignite_async.handlers import RNGStates
    >>> saved = RNGStates().state_dict()
    >>> a = random.random()
    >>> RNGStates().load_state_dict(saved)
    >>> random.random() == a
    True
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        assert not isinstance(keys, str)
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(keys.copy()),
                "pos": pos,
                "has_gauss": has_gauss,
                "cached_gaussian": cached,
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        missing = [k for k in ("python", "numpy", "torch") if k not in state_dict]
        if missing:
            raise ValueError(f"RNGStates state_dict lacks {missing}")
        python = state_dict["python"]
        random.setstate((python[0], tuple(python[1]), python[2]))
        n = state_dict["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy(), n["pos"], n["has_gauss"], n["cached_gaussian"]))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
