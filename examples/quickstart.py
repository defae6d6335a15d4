"""The main job (`make demo`): an MLP learns f(x) = 2x - x^3.

    make demo                                    # or: .venv/bin/python examples/quickstart.py
    .venv/bin/python examples/quickstart.py --resume --epochs 40     # continue from the last checkpoint
    .venv/bin/python examples/quickstart.py --log-url http://127.0.0.1:8000/records

What runs beside the training step, none of it blocking it:
- every 5 epochs, an evaluator Engine scores a snapshot of the weights, as a background task;
- every 10 epochs, a ModelCheckpoint (model, optimizer, trainer, RNG states) written in the background;
- a rich progress bar; metrics to runs/<name>/metrics.jsonl, and to an HTTP endpoint with --log-url.
"""

from __future__ import annotations

import argparse
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, ModelCheckpoint, ProgressBar, RNGStates
from ignite_async.loggers import HTTPLogger, JSONLinesLogger


def target(x: torch.Tensor) -> torch.Tensor:
    return 2 * x - x**3


def make_loader(n: int, *, shuffle: bool, seed: int) -> DataLoader[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=generator) * 4 - 2  # x in [-2, 2]
    return DataLoader(TensorDataset(x, target(x)), batch_size=64, shuffle=shuffle, generator=generator)


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


async def evaluate(weights: dict[str, torch.Tensor], loader: DataLoader[tuple[torch.Tensor, ...]]) -> float:
    """Mean squared error of ``weights`` on ``loader``, by an evaluator Engine whose steps run in threads."""
    model = build_model()
    model.load_state_dict(weights)
    model.eval()

    def score(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, int]:
        x, y = batch
        with torch.no_grad():
            return float(((model(x) - y) ** 2).sum()), len(x)

    async def eval_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        total, count = await anyio.to_thread.run_sync(score, batch)
        engine.state.total += total
        engine.state.count += count

    evaluator = Engine(eval_step)

    @evaluator.on(Events.STARTED)
    def reset(engine: Engine) -> None:
        engine.state.total, engine.state.count = 0.0, 0

    state = await evaluator.run(loader)
    return float(state.total / state.count)


async def main(
    epochs: int = 30,
    name: str = "quickstart",
    runs: Path = Path("runs"),
    resume: bool = False,
    log_url: str | None = None,
) -> dict[str, Any]:
    directory = runs / name
    torch.manual_seed(0)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_loader = make_loader(2048, shuffle=True, seed=0)
    val_loader = make_loader(512, shuffle=False, seed=1)

    def train_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        model.train()
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    trainer = Engine(train_step)
    to_save = {"model": model, "optimizer": optimizer, "trainer": trainer, "rng": RNGStates()}

    # Every 5 epochs: evaluate a snapshot of the weights in the background while training goes on.
    @trainer.on(Events.EPOCH_COMPLETED(every=5))
    def spawn_evaluation(engine: Engine) -> None:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        epoch = engine.state.epoch

        async def run_evaluation() -> None:
            mse = await evaluate(weights, val_loader)
            engine.state.metrics["val_mse"] = mse
            engine.state.metrics[f"val_mse@{epoch}"] = mse

        engine.spawn(run_evaluation)

    checkpoints = directory / "checkpoints"
    checkpointer = ModelCheckpoint(checkpoints, "quickstart", n_saved=2, require_empty=False)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=10), checkpointer, to_save)
    ProgressBar().attach(trainer, output_transform=lambda loss: {"loss": loss})

    if not resume:  # a fresh run: the previous run's files would mix with this one's
        (directory / "metrics.jsonl").unlink(missing_ok=True)
        for old in checkpoints.glob("quickstart_checkpoint_*.pt"):
            old.unlink()
    else:
        found = sorted(checkpoints.glob("quickstart_checkpoint_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))
        if found:
            Checkpoint.load_objects(to_save, found[-1])
            print(f"resumed from {found[-1]} at epoch {trainer.state.epoch}")

    async with AsyncExitStack() as stack:
        jsonl = await stack.enter_async_context(JSONLinesLogger(directory / "metrics.jsonl"))
        loggers: list[Any] = [jsonl]
        if log_url is not None:
            loggers.append(await stack.enter_async_context(HTTPLogger(log_url, run_id=name)))
        for logger in loggers:
            logger.attach_output_handler(
                trainer, Events.ITERATION_COMPLETED(every=10), "train", output_transform=lambda loss: {"loss": loss}
            )
            logger.attach_opt_params_handler(trainer, Events.EPOCH_STARTED, optimizer)
        started = time.perf_counter()
        state = await trainer.run(train_loader, max_epochs=epochs)
        elapsed = time.perf_counter() - started

    evaluations = {k: v for k, v in state.metrics.items() if k.startswith("val_mse@")}
    final_mse = await evaluate(model.state_dict(), val_loader)
    print(f"done: {state.epoch} epochs, {state.iteration} iterations in {elapsed:.1f} s")
    for key in sorted(evaluations, key=lambda k: int(k.split("@")[1])):
        print(f"  epoch {key.split('@')[1]:>3}: val mse {evaluations[key]:.5f}")
    print(f"final validation mse {final_mse:.5f} (the target's variance on [-2, 2] is about 1.2)")
    print(f"artifacts: {directory / 'metrics.jsonl'}, checkpoints in {checkpoints}")
    return {"state": state, "final_mse": final_mse, "evaluations": evaluations, "directory": directory}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--name", default="quickstart")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--log-url", default=None)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.epochs, args.name, args.runs, args.resume, args.log_url, backend=args.backend)
