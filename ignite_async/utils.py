"""Small helpers shared by training scripts (pytorch-ignite's ``ignite.utils``).

Moving nested batches to a device, mapping a function over the tensors of a nested structure, one-hot
encoding, configuring a logger and seeding every random generator at once:

>>> import torch
>>> from ignite_async.utils import apply_to_tensor, manual_seed, to_onehot
>>> apply_to_tensor({"x": torch.tensor([1, 2]), "tag": "a"}, lambda t: t * 10)
{'x': tensor([10, 20]), 'tag': 'a'}
>>> to_onehot(torch.tensor([0, 2]), num_classes=3)
tensor([[1, 0, 0],
        [0, 0, 1]], dtype=torch.uint8)
>>> manual_seed(0); a = torch.rand(2); manual_seed(0); bool(torch.equal(a, torch.rand(2)))
True
"""

from __future__ import annotations

import logging
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import torch

__all__ = ["apply_to_tensor", "apply_to_type", "convert_tensor", "manual_seed", "setup_logger", "to_onehot"]

_DEFAULT_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def apply_to_type(x: Any, input_type: type | tuple[type, ...], func: Callable[[Any], Any]) -> Any:
    """Apply ``func`` to every object of ``input_type`` in ``x``, a nested structure, and rebuild it.

    Mappings, namedtuples and other sequences are rebuilt with their own type around the mapped items;
    strings and bytes are returned as they are (unless they are themselves of ``input_type``). Any other
    leaf raises :class:`TypeError`, as in pytorch-ignite.

    :param x: an object of ``input_type``, or a mapping or sequence of such (nested to any depth).
    :param input_type: the type (or tuple of types) that ``func`` applies to.
    :param func: the function applied to each object of ``input_type``.
    :return: ``x`` with ``func`` applied to its leaves of ``input_type``.
    :raises TypeError: for an ``input_type`` that is not a type or a tuple of types, a ``func`` that is not
        callable (both at the call), or a leaf that is neither of ``input_type`` nor a string, bytes, mapping or
        sequence.

    >>> from collections import namedtuple
    >>> from ignite_async.utils import apply_to_type
    >>> Point = namedtuple("Point", "x y")
    >>> apply_to_type([1, (2, 3), {"k": Point(4, 5)}, "s"], int, lambda n: n + 1)
    [2, (3, 4), {'k': Point(x=5, y=6)}, 's']
    """
    types = input_type if isinstance(input_type, tuple) else (input_type,)
    if not types or not all(isinstance(t, type) for t in types):
        raise TypeError(
            f"input_type must be a type (e.g. torch.Tensor) or a non-empty tuple of types, got {input_type!r}"
        )
    _check_func(func)
    return _apply(x, input_type, func)


def _check_func(func: object) -> None:
    if not callable(func):
        raise TypeError(f"func must be callable (it is applied to each matching object), got {func!r}")


def _apply(x: Any, input_type: type | tuple[type, ...], func: Callable[[Any], Any]) -> Any:
    if isinstance(x, input_type):
        return func(x)
    if isinstance(x, (str, bytes)):
        return x
    if isinstance(x, Mapping):
        return type(x)({key: _apply(value, input_type, func) for key, value in x.items()})  # type: ignore[call-arg]
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple takes its fields positionally
        return type(x)(*(_apply(item, input_type, func) for item in x))
    if isinstance(x, Sequence):
        return type(x)([_apply(item, input_type, func) for item in x])  # type: ignore[call-arg]
    raise TypeError(f"expected {input_type}, or a mapping or sequence of them; got an object of type {type(x)}")


def apply_to_tensor(x: Any, func: Callable[[torch.Tensor], Any]) -> Any:
    """Apply ``func`` to every tensor in ``x``, a tensor or a nested mapping or sequence of tensors.

    :param x: a tensor, or a mapping or sequence of tensors (nested to any depth).
    :param func: the function applied to each tensor.
    :return: ``x`` rebuilt with ``func`` applied to each tensor (see :func:`apply_to_type`).
    :raises TypeError: for a ``func`` that is not callable (at the call), or a leaf of another type.

    >>> import torch
    >>> from ignite_async.utils import apply_to_tensor
    >>> apply_to_tensor((torch.ones(2), [torch.zeros(1)]), lambda t: t + 1)
    (tensor([2., 2.]), [tensor([1.])])
    """
    _check_func(func)
    return _apply(x, torch.Tensor, func)


def convert_tensor(x: Any, device: str | torch.device | None = None, non_blocking: bool = False) -> Any:
    """Move every tensor in ``x`` (a tensor or a nested mapping or sequence of tensors) to ``device``.

    With ``device=None`` the tensors are left where they are.

    :param x: a tensor, or a mapping or sequence of tensors (nested to any depth).
    :param device: where to move the tensors, or None to leave them.
    :param non_blocking: copy asynchronously with respect to the host where torch can (pinned CPU memory
        to a CUDA device).
    :return: ``x`` rebuilt around the moved tensors.
    :raises TypeError: for a ``device`` that is not None, a string, a ``torch.device`` or a device index.
    :raises ValueError: for a string that names no device (``"cpux"``).

    >>> import torch
    >>> from ignite_async.utils import convert_tensor
    >>> batch = convert_tensor({"x": torch.ones(1, dtype=torch.float64), "id": "a"}, device="cpu")
    >>> batch["x"].device, batch["id"]
    (device(type='cpu'), 'a')
    """
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
            raise TypeError(
                f"device must be None, a string such as 'cuda:0', a torch.device or a device index, got {device!r}"
            )
        try:
            torch.device(device)  # parses the name now, rather than at the first tensor
        except RuntimeError as exc:
            raise ValueError(f"device {device!r} names no torch device: {exc}") from exc

    def move(tensor: torch.Tensor) -> torch.Tensor:
        if device is None:
            return tensor
        return tensor.to(device=device, non_blocking=non_blocking)

    return _apply(x, torch.Tensor, move)


def to_onehot(indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot encode a tensor of class indices of shape ``(N, ...)`` as ``uint8`` of shape ``(N, num_classes, ...)``.

    The result is on the device of ``indices``.

    :param indices: an int64 (or int32) tensor of class indices, of any shape with a first (batch) dimension.
    :param num_classes: the number of classes, the size of the new dimension 1.
    :return: a ``uint8`` tensor holding 1 at each index along dimension 1 and 0 elsewhere.
    :raises TypeError: for ``indices`` that are not an int64 or int32 tensor with a first dimension, or a
        ``num_classes`` that is not an integer.
    :raises ValueError: for ``num_classes < 1``.

    >>> import torch
    >>> from ignite_async.utils import to_onehot
    >>> to_onehot(torch.tensor([[1, 0]]), num_classes=2).shape
    torch.Size([1, 2, 2])
    """
    if not isinstance(indices, torch.Tensor):
        raise TypeError(
            f"indices must be a tensor of class indices, got {type(indices).__name__}: pass torch.as_tensor(...)"
        )
    if indices.dtype not in (torch.int64, torch.int32):  # the index dtypes that scatter takes
        raise TypeError(
            f"indices must be an int64 (or int32) tensor, got dtype {indices.dtype}: convert with indices.long()"
        )
    if indices.dim() == 0:
        raise TypeError("indices must have a first (batch) dimension, got a 0-dim tensor: pass indices.reshape(1)")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    shape = (indices.shape[0], num_classes, *indices.shape[1:])
    onehot = torch.zeros(shape, dtype=torch.uint8, device=indices.device)
    return onehot.scatter_(1, indices.unsqueeze(1), 1)


def setup_logger(
    name: str | None = "ignite",
    level: int = logging.INFO,
    stream: TextIO | None = None,
    format: str = _DEFAULT_FORMAT,
    filepath: str | None = None,
    distributed_rank: int | None = None,
    reset: bool = False,
    encoding: str | None = "utf-8",
) -> logging.Logger:
    """Configure the logger ``name`` (its level, a stream handler and optionally a file handler, its format).

    As in pytorch-ignite: a logger that already exists keeps its configuration unless ``reset=True``, which
    removes its handlers first and configures it again. On a process of distributed rank above 0 the
    logger gets only a :class:`logging.NullHandler`, so that one process writes the logs. A named logger
    stops propagating to its ancestors, so that messages are not written twice.

    :param name: the logger's name; None for the root logger.
    :param level: the level of the logger and of its handlers.
    :param stream: the stream to write to; None for ``sys.stderr``.
    :param format: the :class:`logging.Formatter` format of the handlers.
    :param filepath: a file to write the logs to as well, or None.
    :param distributed_rank: the rank of this process; None to ask :func:`ignite_async.distributed.get_rank`.
    :param reset: configure an existing logger again, rather than keep its handlers, level and format.
    :param encoding: the encoding of the file at ``filepath``.
    :return: the logger.
    :raises TypeError: for a ``distributed_rank`` that is neither None nor an integer.
    :raises ValueError: for a negative ``distributed_rank``.

    >>> import logging, sys
    >>> from ignite_async.utils import setup_logger
    >>> logger = setup_logger("doctest-trainer", stream=sys.stdout, format="%(name)s %(levelname)s: %(message)s")
    >>> logger.info("epoch 1 done")
    doctest-trainer INFO: epoch 1 done
    >>> _ = setup_logger("doctest-trainer", stream=sys.stdout, format="[%(name)s] %(message)s", reset=True)
    >>> logger.warning("again")
    [doctest-trainer] again
    """
    if distributed_rank is not None:
        if isinstance(distributed_rank, bool) or not isinstance(distributed_rank, int):
            raise TypeError(
                f"distributed_rank must be the process's rank (an int) or None to ask the process group, "
                f"got {distributed_rank!r}"
            )
        if distributed_rank < 0:
            raise ValueError(f"distributed_rank must be >= 0, got {distributed_rank}")
    existed = name is None or name in logging.root.manager.loggerDict
    logger = logging.getLogger(name)

    if distributed_rank is None:
        from ignite_async.distributed import get_rank  # imported here: torch.distributed only when needed

        distributed_rank = get_rank()

    if reset or distributed_rank > 0:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    if distributed_rank > 0:
        logger.addHandler(logging.NullHandler())  # the other ranks stay quiet

    if existed and not reset:
        return logger

    if distributed_rank == 0:
        logger.setLevel(level)
        formatter = logging.Formatter(format)
        handlers: list[logging.Handler] = [logging.StreamHandler(stream=stream)]
        if filepath is not None:
            handlers.append(logging.FileHandler(filepath, encoding=encoding))
        for handler in handlers:
            handler.setLevel(level)
            handler.setFormatter(formatter)
            logger.addHandler(handler)

    if name is not None:
        logger.propagate = False
    return logger


def manual_seed(seed: int) -> None:
    """Seed python's :mod:`random`, numpy's global generator, torch's CPU generator and, if CUDA is available,
    every CUDA device's generator.

    After ``manual_seed(s)`` every one of them draws what it draws after pytorch-ignite's ``manual_seed(s)``.

    :param seed: the seed, an integer in ``[0, 2**32 - 1]`` (numpy's range).
    :raises TypeError: for a seed that is not an integer (``1.5``, ``"1"``).
    :raises ValueError: for a seed outside ``[0, 2**32 - 1]``.

    >>> import random
    >>> import numpy as np
    >>> from ignite_async.utils import manual_seed
    >>> manual_seed(7); first = (random.random(), np.random.rand())
    >>> manual_seed(7); first == (random.random(), np.random.rand())
    True
    """
    try:
        seed = operator.index(seed)  # ints and numpy integers, not floats or strings
    except TypeError:
        raise TypeError(f"seed must be an integer, got {seed!r}: pass int(seed)") from None
    if not 0 <= seed <= 2**32 - 1:
        raise ValueError(f"seed must be in [0, 2**32 - 1] (numpy's range), got {seed}")
    random.seed(seed)
    torch.manual_seed(seed)  # seeds the CUDA generators too, lazily
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency, but the seeding does not need it
        pass
    else:
        np.random.seed(seed)
