from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import EMAHandler as IgniteEMAHandler
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import EMAHandler


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # The models are tiny: more threads only contend for the cores (a loaded 2-core machine runs these 10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))


def make_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(6, 4, generator=generator), torch.randn(6, 1, generator=generator)) for _ in range(4)]


def make_step(model: nn.Module) -> Any:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(engine: Any, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        model.train()
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def assert_same_module(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key
    assert a.training == b.training


WARMUPS: list[tuple[float, int] | None] = [None, (0.5, 4), (0.001, 5), (0.3, 1)]
# (handle_buffers, warmup, every, name): every buffer mode, every warmup with averaged buffers, and a second
# name (pytorch-ignite's warmup schedules state.ema_momentum whatever the name: see the test after this one).
CASES = sorted(
    {(mode, None, every, "ema_momentum") for mode in ("copy", "update", "ema_train") for every in (1, 3)}
    | {("update", warmup, every, "ema_momentum") for warmup in WARMUPS for every in (1, 3)}
    | {("copy", None, 3, "gen_momentum")},
    key=str,
)


@pytest.mark.anyio
@pytest.mark.parametrize(("handle_buffers", "warmup", "every", "name"), CASES)
async def test_ema_weights_equal_ignites(
    handle_buffers: str, warmup: tuple[float, int] | None, every: int, name: str
) -> None:
    initial = make_model()
    data = make_data()
    kwargs: dict[str, Any] = {"momentum": 0.02, "handle_buffers": handle_buffers}
    if warmup is not None:
        kwargs["momentum_warmup"], kwargs["warmup_iters"] = warmup

    ref_model = copy.deepcopy(initial)
    ref_ema = IgniteEMAHandler(ref_model, **kwargs)
    ref = IgniteEngine(make_step(ref_model))
    ref_ema.attach(ref, name=name, event=IgniteEvents.ITERATION_COMPLETED(every=every))
    ref_momenta: list[float] = []
    ref.add_event_handler(IgniteEvents.ITERATION_COMPLETED, lambda e: ref_momenta.append(getattr(e.state, name)))
    torch.manual_seed(5)  # the dropout masks
    ref.run(data, max_epochs=3)

    model = copy.deepcopy(initial)
    ema = EMAHandler(model, **kwargs)
    ours = Engine(make_step(model))
    ema.attach(ours, name=name, event=Events.ITERATION_COMPLETED(every=every))
    momenta: list[float] = []
    ours.add_event_handler(Events.ITERATION_COMPLETED, lambda e: momenta.append(getattr(e.state, name)))
    torch.manual_seed(5)
    await ours.run(data, max_epochs=3)

    assert momenta == ref_momenta
    assert_same_module(model, ref_model)
    assert_same_module(ema.ema_model, ref_ema.ema_model)
    assert not any(torch.equal(a, b) for a, b in zip(ema.ema_model.parameters(), model.parameters(), strict=True))
    assert all(not p.requires_grad for p in ema.ema_model.parameters())
    ema.ema_model.eval()
    ref_ema.ema_model.eval()
    x = torch.cat([x for x, _ in data])
    with torch.no_grad():
        assert torch.equal(ema.ema_model(x), ref_ema.ema_model(x))


def test_warmup_with_another_name_schedules_that_name() -> None:
    # pytorch-ignite 0.5.5 schedules state.ema_momentum whatever the name: its updates then use a constant
    # momentum. Here the warmup applies to the attribute the updates read.
    model = nn.Linear(2, 1)
    ema = EMAHandler(model, momentum=0.01, momentum_warmup=0.1, warmup_iters=4)
    engine = Engine(lambda e, b: None)
    ema.attach(engine, name="gen_momentum")
    seen: list[float] = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.gen_momentum))
    anyio.run(engine.run, range(6))
    assert seen == pytest.approx([0.1, 0.07, 0.04, 0.01, 0.01, 0.01])
    assert not hasattr(engine.state, "ema_momentum")


@pytest.mark.parametrize(
    ("warmup", "momentum"),
    [((0.5, 4), 0.02), ((0.001, 5), 0.02), ((0.3, 1), 0.02), ((0.2, 10), 0.2), ((0.9, 3), 0.1)],
)
def test_warmup_values_equal_ignites(warmup: tuple[float, int], momentum: float) -> None:
    from ignite.handlers.ema_handler import EMAWarmUp

    from ignite_async.handlers.ema import _MomentumWarmup

    ref = EMAWarmUp(warmup[0], warmup[1], momentum)
    ours = _MomentumWarmup(warmup[0], warmup[1], momentum)
    assert [ours(i) for i in range(1, 20)] == [ref(i) for i in range(1, 20)]


@pytest.mark.parametrize(
    "kwargs",
    [{"momentum": 0.0}, {"momentum": 1.0}, {"momentum": -0.1}, {"momentum": 1.5}, {"handle_buffers": "share"}],
)
def test_bad_arguments_raise_value_error_as_ignite(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"momentum|handle_buffers"):
        IgniteEMAHandler(nn.Linear(1, 1), **kwargs)
    with pytest.raises(ValueError, match=r"momentum|handle_buffers"):
        EMAHandler(nn.Linear(1, 1), **kwargs)


def test_a_model_must_be_a_module_as_ignite() -> None:
    with pytest.raises(ValueError, match=r"nn\.Module"):
        IgniteEMAHandler(lambda x: x)
    with pytest.raises(ValueError, match=r"nn\.Module"):
        EMAHandler(lambda x: x)  # type: ignore[arg-type]


@pytest.mark.parametrize(("handle_buffers", "training"), [("copy", False), ("update", False), ("ema_train", True)])
def test_defaults_and_mode_as_ignite(handle_buffers: str, training: bool) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ref = IgniteEMAHandler(model, handle_buffers=handle_buffers)
    ours = EMAHandler(model, handle_buffers=handle_buffers)
    assert ours.momentum == ref.momentum == 0.0002
    assert ours.ema_model.training is ref.ema_model.training is training
    assert ours.model is model
    assert ours.ema_model is not model
    assert_same_module(ours.ema_model, ref.ema_model)


def test_an_existing_attribute_is_kept_with_a_warning_as_ignite() -> None:
    for handler_cls, engine_cls in ((IgniteEMAHandler, IgniteEngine), (EMAHandler, Engine)):
        engine = engine_cls(lambda e, b: None)
        engine.state.ema_momentum = 0.3
        with pytest.warns(UserWarning, match="ema_momentum"):
            handler_cls(nn.Linear(1, 1), momentum=0.1).attach(engine)
        assert engine.state.ema_momentum == 0.3
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            handler_cls(nn.Linear(1, 1), momentum=0.1).attach(engine, warn_if_exists=False)


@pytest.mark.anyio
async def test_two_handlers_on_one_engine() -> None:
    gen, disc = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    nn.init.zeros_(gen.weight)
    nn.init.zeros_(disc.weight)
    gen_ema, disc_ema = EMAHandler(gen, momentum=0.5), EMAHandler(disc, momentum=0.5)

    def step(engine: Engine, batch: float) -> None:
        gen.weight.data.fill_(batch)
        disc.weight.data.fill_(-batch)

    engine = Engine(step)
    gen_ema.attach(engine, "gen_momentum")
    disc_ema.attach(engine, "disc_momentum", event=Events.ITERATION_COMPLETED(every=2))
    await engine.run([1.0, 1.0, 1.0, 1.0])
    assert gen_ema.ema_model.weight.item() == 0.9375
    assert disc_ema.ema_model.weight.item() == -0.75
    assert (engine.state.gen_momentum, engine.state.disc_momentum) == (0.5, 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.anyio
async def test_ema_weights_equal_ignites_on_cuda() -> None:
    initial = make_model().cuda()
    data = [(x.cuda(), y.cuda()) for x, y in make_data()]
    ref_model = copy.deepcopy(initial)
    ref_ema = IgniteEMAHandler(ref_model, momentum=0.02, momentum_warmup=0.5, warmup_iters=4, handle_buffers="update")
    ref = IgniteEngine(make_step(ref_model))
    ref_ema.attach(ref)
    torch.manual_seed(5)
    ref.run(data, max_epochs=3)
    model = copy.deepcopy(initial)
    ema = EMAHandler(model, momentum=0.02, momentum_warmup=0.5, warmup_iters=4, handle_buffers="update")
    ours = Engine(make_step(model))
    ema.attach(ours)
    torch.manual_seed(5)
    await ours.run(data, max_epochs=3)
    assert next(ema.ema_model.parameters()).is_cuda
    for a, b in zip(ema.ema_model.state_dict().values(), ref_ema.ema_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_a_model_without_parameters_is_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match=r"ReLU\) has no parameters"):
        EMAHandler(nn.ReLU())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"momentum": "a"}, TypeError, "momentum must be a real number in \\(0, 1\\), got 'a'"),
        ({"momentum": None}, TypeError, "momentum must be a real number"),
        ({"momentum_warmup": 2.0, "warmup_iters": 3}, ValueError, r"momentum_warmup must be in \(0, 1\], got 2\.0"),
        ({"momentum_warmup": 0.0, "warmup_iters": 3}, ValueError, r"momentum_warmup must be in \(0, 1\], got 0\.0"),
        ({"momentum_warmup": float("nan"), "warmup_iters": 3}, ValueError, r"momentum_warmup must be in \(0, 1\]"),
        ({"momentum_warmup": "0.1", "warmup_iters": 3}, TypeError, "momentum_warmup must be a real number"),
        ({"momentum_warmup": 0.1, "warmup_iters": 0}, ValueError, "warmup_iters must be >= 1, got 0"),
        ({"momentum_warmup": 0.1, "warmup_iters": -1}, ValueError, "warmup_iters must be >= 1, got -1"),
        ({"momentum_warmup": 0.1, "warmup_iters": 2.5}, TypeError, "warmup_iters must be an integer >= 1"),
        ({"momentum_warmup": 0.1}, ValueError, r"momentum_warmup was given without warmup_iters.*pass warmup_iters"),
        ({"warmup_iters": 5}, ValueError, r"warmup_iters was given without momentum_warmup.*pass momentum_warmup"),
    ],
)
def test_bad_momenta_and_warmups_are_refused_at_the_call(kwargs: dict[str, Any], error: type, match: str) -> None:
    if "momentum" in kwargs:  # pytorch-ignite raises the same type here (it fails comparing the momentum)
        with pytest.raises(error):
            IgniteEMAHandler(nn.Linear(1, 1), **kwargs)
    with pytest.raises(error, match=match):
        EMAHandler(nn.Linear(1, 1), **kwargs)


@pytest.mark.anyio
async def test_a_warmup_from_momentum_one_starts_with_a_copy_and_attach_needs_an_engine() -> None:
    model = nn.Linear(1, 1, bias=False)
    ema = EMAHandler(model, momentum=0.5, momentum_warmup=1.0, warmup_iters=2)  # the range's closed end
    with pytest.raises(TypeError, match=r"engine must be an ignite_async Engine \(the trainer\), got builtins\.str"):
        ema.attach("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got ignite\.engine\.engine\.Engine"):
        ema.attach(IgniteEngine(lambda e, b: None))  # type: ignore[arg-type]
    trainer = Engine(lambda e, b: model.weight.data.fill_(b))
    ema.attach(trainer)
    await trainer.run([3.0])
    assert ema.ema_model.weight.item() == 3.0  # momentum 1 at the first update: a copy of the model
    await trainer.run([5.0], max_epochs=2)
    assert (ema.ema_model.weight.item(), trainer.state.ema_momentum) == (4.0, 0.5)
