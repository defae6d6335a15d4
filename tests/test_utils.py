from __future__ import annotations

import io
import logging
import random
import uuid
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ignite.utils as ref
import numpy as np
import pytest
import torch

from ignite_async import utils as ours

Point = namedtuple("Point", ["x", "y"])

NESTED: list[Any] = [
    torch.arange(3),
    (torch.ones(2), torch.zeros(1)),
    [torch.ones(2), [torch.tensor(5), (torch.tensor([1.5]),)]],
    {"a": torch.ones(1), "b": [torch.zeros(2), {"c": torch.tensor(3)}]},
    OrderedDict([("z", torch.ones(1)), ("a", torch.zeros(1))]),
    Point(torch.ones(1), [torch.zeros(1), "label"]),
    {"text": "hello", "raw": b"bytes", "t": torch.ones(1)},
    "a string",
    b"some bytes",
    [],
    (),
    {},
]


def same(a: Any, b: Any) -> bool:
    """Equal values with equal types, all the way down (tensors compared with dtype and device)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.device == b.device and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("index", range(len(NESTED)))
def test_apply_to_tensor_as_ignite(index: int) -> None:
    x = NESTED[index]

    def func(t: torch.Tensor) -> torch.Tensor:
        return t.double() * 2

    assert same(ours.apply_to_tensor(x, func), ref.apply_to_tensor(x, func))


@pytest.mark.parametrize("index", range(len(NESTED)))
def test_convert_tensor_as_ignite(index: int) -> None:
    x = NESTED[index]
    for device in (None, "cpu", torch.device("cpu")):
        mine = ours.convert_tensor(x, device=device)
        theirs = ref.convert_tensor(x, device=device)
        assert same(mine, theirs)
    # Without a device the very tensors are returned.
    if isinstance(x, torch.Tensor):
        assert ours.convert_tensor(x) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("non_blocking", [False, True])
def test_convert_tensor_to_cuda_as_ignite(non_blocking: bool) -> None:
    x = {"a": torch.ones(2).pin_memory(), "b": [torch.arange(3), "s"]}
    mine = ours.convert_tensor(x, device="cuda", non_blocking=non_blocking)
    theirs = ref.convert_tensor(x, device="cuda", non_blocking=non_blocking)
    torch.cuda.synchronize()
    assert mine["a"].is_cuda
    assert same(mine, theirs)


@pytest.mark.parametrize(
    ("x", "input_type"),
    [
        ([1, (2, 3), {"k": Point(4, "s")}], int),
        ([1, (2, 3.5), {"k": Point(4, "s")}], (int, float)),
        (["s", ("t", b"u")], str),
        ({"s": "a", "n": [1, 2]}, int),
        (Point(x=1, y=Point(2, 3)), int),
    ],
)
def test_apply_to_type_as_ignite(x: Any, input_type: Any) -> None:
    def func(v: Any) -> Any:
        return v * 2

    assert same(ours.apply_to_type(x, input_type, func), ref.apply_to_type(x, input_type, func))


@pytest.mark.parametrize("x", [1.5, None, object(), [torch.ones(1), 3], {"a": {4}}])
def test_unsupported_leaves_raise_type_error_as_ignite(x: Any) -> None:
    with pytest.raises(TypeError):
        ref.apply_to_tensor(x, lambda t: t)
    with pytest.raises(TypeError, match="mapping or sequence"):
        ours.apply_to_tensor(x, lambda t: t)


@pytest.mark.parametrize(
    ("shape", "num_classes"),
    [((5,), 4), ((3, 7), 5), ((2, 3, 4), 3), ((1,), 1), ((0,), 3)],
)
def test_to_onehot_as_ignite(shape: tuple[int, ...], num_classes: int) -> None:
    generator = torch.Generator().manual_seed(sum(shape) + num_classes)
    indices = torch.randint(0, num_classes, shape, generator=generator)
    mine = ours.to_onehot(indices, num_classes)
    assert same(mine, ref.to_onehot(indices, num_classes))
    assert mine.shape == (shape[0], num_classes, *shape[1:])


def draws() -> dict[str, Any]:
    out: dict[str, Any] = {
        "random": [random.random() for _ in range(5)] + [random.randint(0, 10**9)],
        "numpy": [*np.random.rand(5).tolist(), int(np.random.randint(0, 10**9))],
        "torch": torch.rand(5),
        "torch_randn": torch.randn(3, dtype=torch.float64),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.rand(5, device="cuda").cpu()
    return out


@pytest.fixture
def restore_rng() -> Iterator[None]:
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    yield
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


@pytest.mark.usefixtures("restore_rng")
@pytest.mark.parametrize("seed", [0, 1, 12, 2**31 - 1])
def test_manual_seed_gives_the_same_draws_as_ignite(seed: int) -> None:
    ref.manual_seed(seed)
    theirs = draws()
    random.random(), np.random.rand(), torch.rand(1)  # move every generator away from the seeded state
    ours.manual_seed(seed)
    mine = draws()
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert same(mine[key], theirs[key]), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("restore_rng")
def test_manual_seed_seeds_every_cuda_device() -> None:
    ours.manual_seed(3)
    states = torch.cuda.get_rng_state_all()
    torch.cuda.manual_seed_all(3)
    assert all(torch.equal(a, b) for a, b in zip(states, torch.cuda.get_rng_state_all(), strict=True))


# ---- setup_logger ----


@pytest.fixture
def logger_names() -> Iterator[Callable[[], tuple[str, str]]]:
    """Fresh pairs of logger names (ours, ignite's); their handlers are closed and removed afterwards."""
    made: list[str] = []

    def make() -> tuple[str, str]:
        tag = uuid.uuid4().hex[:8]
        pair = (f"ours-{tag}", f"ref-{tag}")
        made.extend(pair)
        return pair

    yield make
    for name in made:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)


def configuration(logger: logging.Logger) -> dict[str, Any]:
    handlers = []
    for h in logger.handlers:
        desc: dict[str, Any] = {"type": type(h).__name__, "level": h.level}
        if h.formatter is not None:
            desc["format"] = h.formatter._fmt
        if isinstance(h, logging.FileHandler):
            desc["file"] = h.baseFilename
            desc["encoding"] = h.encoding
        elif isinstance(h, logging.StreamHandler):
            desc["stream"] = id(h.stream)
        handlers.append(desc)
    return {"level": logger.level, "propagate": logger.propagate, "handlers": handlers}


SETUPS: list[dict[str, Any]] = [
    {},
    {"level": logging.DEBUG},
    {"level": logging.WARNING, "format": "%(name)s | %(message)s"},
    {"distributed_rank": 0},
    {"distributed_rank": 1},
    {"distributed_rank": 2, "level": logging.DEBUG},
    {"file": True},
    {"file": True, "encoding": "latin-1", "level": logging.ERROR},
]


@pytest.mark.parametrize("kwargs", SETUPS)
def test_setup_logger_configures_as_ignite(
    kwargs: dict[str, Any], logger_names: Callable[[], tuple[str, str]], tmp_path: Path
) -> None:
    mine_name, ref_name = logger_names()
    stream = io.StringIO()
    kwargs = dict(kwargs)
    filepath = str(tmp_path / "log.txt") if kwargs.pop("file", False) else None
    mine = ours.setup_logger(mine_name, stream=stream, filepath=filepath, **kwargs)
    theirs = ref.setup_logger(ref_name, stream=stream, filepath=filepath, **kwargs)
    assert mine is logging.getLogger(mine_name)
    assert configuration(mine) == configuration(theirs)


def test_setup_logger_writes_the_same_lines_as_ignite(
    logger_names: Callable[[], tuple[str, str]], tmp_path: Path
) -> None:
    mine_name, ref_name = logger_names()
    fmt = "%(levelname)s %(message)s"
    out: dict[str, io.StringIO] = {}
    for name, setup in ((mine_name, ours.setup_logger), (ref_name, ref.setup_logger)):
        out[name] = io.StringIO()
        logger = setup(name, stream=out[name], format=fmt, filepath=str(tmp_path / f"{name}.log"), level=logging.INFO)
        logger.debug("hidden")
        logger.info("épöch 1")
        logger.error("boom")
        for handler in logger.handlers:
            handler.flush()
    assert out[mine_name].getvalue() == out[ref_name].getvalue() == "INFO épöch 1\nERROR boom\n"
    mine_file = (tmp_path / f"{mine_name}.log").read_text(encoding="utf-8")
    assert mine_file == (tmp_path / f"{ref_name}.log").read_text(encoding="utf-8") == out[mine_name].getvalue()


@pytest.mark.parametrize("reset", [False, True])
def test_an_existing_logger_is_kept_unless_reset_as_ignite(
    reset: bool, logger_names: Callable[[], tuple[str, str]]
) -> None:
    mine_name, ref_name = logger_names()
    first = io.StringIO()
    for name, setup in ((mine_name, ours.setup_logger), (ref_name, ref.setup_logger)):
        setup(name, stream=first, format="first %(message)s", level=logging.INFO)
    second = io.StringIO()
    mine = ours.setup_logger(mine_name, stream=second, format="second %(message)s", level=logging.DEBUG, reset=reset)
    theirs = ref.setup_logger(ref_name, stream=second, format="second %(message)s", level=logging.DEBUG, reset=reset)
    assert configuration(mine) == configuration(theirs)
    assert len(mine.handlers) == 1
    assert mine.level == (logging.DEBUG if reset else logging.INFO)


def test_a_logger_made_elsewhere_counts_as_existing_as_ignite(logger_names: Callable[[], tuple[str, str]]) -> None:
    mine_name, ref_name = logger_names()
    logging.getLogger(mine_name)
    logging.getLogger(ref_name)
    mine = ours.setup_logger(mine_name, stream=io.StringIO())
    theirs = ref.setup_logger(ref_name, stream=io.StringIO())
    assert configuration(mine) == configuration(theirs) == {"level": 0, "propagate": True, "handlers": []}


def test_the_root_logger_as_ignite() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        mine = configuration(ours.setup_logger(None, stream=stream, reset=True))
        theirs = configuration(ref.setup_logger(None, stream=stream, reset=True))
        assert mine == theirs
        assert mine["propagate"] is True
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_defaults_match_ignite() -> None:
    import inspect

    mine = {k: p.default for k, p in inspect.signature(ours.setup_logger).parameters.items()}
    theirs = {k: p.default for k, p in inspect.signature(ref.setup_logger).parameters.items()}
    assert mine == theirs
    for name in ("convert_tensor", "apply_to_tensor", "apply_to_type", "to_onehot", "manual_seed"):
        mine_params = inspect.signature(getattr(ours, name)).parameters
        ref_params = inspect.signature(getattr(ref, name)).parameters
        assert [(k, p.default) for k, p in mine_params.items()] == [(k, p.default) for k, p in ref_params.items()]


# Bad input is refused at the call, naming the argument and the fix (pytorch-ignite fails later, inside torch or
# numpy, or not at all).


@pytest.mark.parametrize(
    ("indices", "num_classes", "error", "match"),
    [
        ([1, 2], 3, TypeError, r"indices must be a tensor.*torch\.as_tensor"),
        (torch.tensor([1.5]), 3, TypeError, r"int64 \(or int32\) tensor, got dtype torch\.float32.*indices\.long\(\)"),
        (torch.tensor([True]), 3, TypeError, r"got dtype torch\.bool"),
        (torch.tensor([1], dtype=torch.uint8), 3, TypeError, r"got dtype torch\.uint8"),
        (torch.tensor(1), 3, TypeError, r"first \(batch\) dimension.*reshape\(1\)"),
        (torch.tensor([1]), "3", TypeError, "num_classes must be an integer, got '3'"),
        (torch.tensor([1]), 3.0, TypeError, "num_classes must be an integer, got 3.0"),
        (torch.tensor([0]), 0, ValueError, "num_classes must be >= 1, got 0"),
    ],
)
def test_to_onehot_refuses_bad_input_at_the_call(indices: Any, num_classes: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ours.to_onehot(indices, num_classes)
    assert same(ours.to_onehot(torch.tensor([1], dtype=torch.int32), 3), ref.to_onehot(torch.tensor([1]), 3))


@pytest.mark.usefixtures("restore_rng")
@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        ("a", TypeError, r"seed must be an integer, got 'a': pass int\(seed\)"),
        (1.5, TypeError, "seed must be an integer, got 1.5"),
        (None, TypeError, "seed must be an integer, got None"),
        (-1, ValueError, r"seed must be in \[0, 2\*\*32 - 1\].*got -1"),
        (2**32, ValueError, r"got 4294967296"),
    ],
)
def test_manual_seed_refuses_bad_input_at_the_call(seed: Any, error: type, match: str) -> None:
    state = torch.get_rng_state()
    with pytest.raises(error, match=match):
        ours.manual_seed(seed)
    assert torch.equal(torch.get_rng_state(), state)  # refused before any generator was seeded
    ref.manual_seed(5)
    theirs = draws()
    ours.manual_seed(np.int64(5))  # a numpy integer is an integer
    assert all(same(a, b) for a, b in zip(draws().values(), theirs.values(), strict=True))


@pytest.mark.parametrize(
    ("device", "error", "match"),
    [
        (
            3.5,
            TypeError,
            r"device must be None, a string such as 'cuda:0', a torch\.device or a device index, got 3\.5",
        ),
        (True, TypeError, "got True"),
        ("cpux", ValueError, "device 'cpux' names no torch device"),
    ],
)
def test_convert_tensor_refuses_a_bad_device_at_the_call(device: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ours.convert_tensor([], device=device)  # refused even with no tensor to move
    assert same(ours.convert_tensor([torch.ones(1)], device=torch.device("cpu")), [torch.ones(1)])


@pytest.mark.parametrize(
    ("input_type", "func", "match"),
    [
        (3, abs, r"input_type must be a type \(e\.g\. torch\.Tensor\) or a non-empty tuple of types, got 3"),
        ((int, "str"), abs, r"got \(<class 'int'>, 'str'\)"),
        ((), abs, r"got \(\)"),
        (int, "f", "func must be callable.*got 'f'"),
    ],
)
def test_apply_to_type_refuses_bad_arguments_at_the_call(input_type: Any, func: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ours.apply_to_type([], input_type, func)  # refused even with nothing to apply to
    assert ours.apply_to_type([1, (2,)], (int, float), lambda n: -n) == ref.apply_to_type(
        [1, (2,)], (int, float), lambda n: -n
    )


def test_apply_to_tensor_refuses_a_func_that_is_not_callable_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"func must be callable.*got 'f'"):
        ours.apply_to_tensor([], "f")
    with pytest.raises(TypeError, match=r"func must be callable.*got None"):
        ours.apply_to_tensor(torch.ones(1), None)


@pytest.mark.parametrize(
    ("rank", "error", "match"),
    [
        ("a", TypeError, r"distributed_rank must be the process's rank \(an int\) or None.*got 'a'"),
        (1.0, TypeError, "got 1.0"),
        (True, TypeError, "got True"),
        (-1, ValueError, "distributed_rank must be >= 0, got -1"),
    ],
)
def test_setup_logger_refuses_a_bad_distributed_rank_at_the_call(
    logger_names: Callable[[], tuple[str, str]], rank: Any, error: type, match: str
) -> None:
    name, _ = logger_names()
    with pytest.raises(error, match=match):
        ours.setup_logger(name, distributed_rank=rank)
    assert name not in logging.root.manager.loggerDict  # refused before the logger was made
