"""A training service: FastAPI + uvicorn, trainings as tasks in the app's lifespan task group.

    .venv/bin/python examples/service.py --port 8000 --runs-dir runs/service

    POST   /runs              start a run (JSON config, every field has a default: {} is a small run)
    GET    /runs/{id}         status (running, completed, failed, cancelled), epoch, iteration, metrics
    GET    /runs/{id}/events  progress as Server-Sent Events, until the run ends
    DELETE /runs/{id}         cancel: the run writes a final checkpoint and ends as "cancelled"

Training steps run in worker threads, so the server answers while runs train. Shutting the server down
(SIGTERM) cancels every running training; each writes a resumable checkpoint before the process exits.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, DiskSaver, RNGStates


class RunConfig(BaseModel):
    """A training's configuration; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(5, ge=1, le=100_000)
    epoch_length: int = Field(20, ge=1, le=100_000)
    hidden: int = Field(32, ge=1, le=4096)
    lr: float = Field(3e-3, gt=0, le=10)
    batch_size: int = Field(64, ge=1, le=65_536)
    step_delay: float = Field(0.0, ge=0, le=5, description="extra seconds per step (simulated slow work)")
    seed: int = 0


@dataclass
class Run:
    id: str
    config: RunConfig
    engine: Engine
    directory: Path
    status: Literal["running", "completed", "failed", "cancelled"] = "running"
    error: str | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)

    def describe(self) -> dict[str, Any]:
        state = self.engine.state
        return {
            "id": self.id,
            "status": self.status,
            "epoch": state.epoch,
            "iteration": state.iteration,
            "metrics": {k: float(v) for k, v in state.metrics.items()},
            "error": self.error,
        }


def build_run(run_id: str, config: RunConfig, directory: Path) -> Run:
    torch.manual_seed(config.seed)
    model = nn.Sequential(nn.Linear(1, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def work(iteration: int) -> float:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + iteration)
        x = torch.rand(config.batch_size, 1, generator=generator) * 4 - 2
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), 2 * x - x**3)
        loss.backward()
        optimizer.step()
        return loss.item()

    async def step(engine: Engine, batch: None) -> float:
        loss = await anyio.to_thread.run_sync(work, engine.state.iteration)  # the server stays responsive
        if config.step_delay:
            await anyio.sleep(config.step_delay)
        return loss

    engine = Engine(step)

    @engine.on(Events.ITERATION_COMPLETED)
    def track(engine: Engine) -> None:
        engine.state.metrics["loss"] = engine.state.output

    to_save = {"model": model, "optimizer": optimizer, "trainer": engine, "rng": RNGStates()}
    checkpointer = Checkpoint(to_save, DiskSaver(directory, require_empty=False), n_saved=1)
    engine.add_event_handler(Events.EPOCH_COMPLETED | Events.INTERRUPT, checkpointer)
    return Run(run_id, config, engine, directory)


async def train(run: Run) -> None:
    try:
        with run.scope:
            await run.engine.run(epoch_length=run.config.epoch_length, max_epochs=run.config.epochs)
            run.status = "completed"
        if run.scope.cancelled_caught:
            run.status = "cancelled"
    except Exception as exc:
        run.status, run.error = "failed", repr(exc)
    finally:
        if run.status == "running":  # the whole server is shutting down
            run.status = "cancelled"
        run.done.set()


def create_app(runs_dir: Path) -> FastAPI:
    runs: dict[str, Run] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            app.state.task_group = tg
            yield
            tg.cancel_scope.cancel()  # shutdown: every training writes its final checkpoint and ends

    app = FastAPI(title="ignite_async training service", lifespan=lifespan)

    def get_run(run_id: str) -> Run:
        if run_id not in runs:
            raise HTTPException(status_code=404, detail=f"no run {run_id!r}")
        return runs[run_id]

    @app.post("/runs", status_code=201)
    async def start_run(config: RunConfig) -> dict[str, Any]:
        run_id = uuid.uuid4().hex[:12]
        run = build_run(run_id, config, runs_dir / run_id)
        runs[run_id] = run
        app.state.task_group.start_soon(train, run)
        return {"id": run_id, "status": run.status}

    @app.get("/runs/{run_id}")
    async def run_status(run_id: str) -> dict[str, Any]:
        return get_run(run_id).describe()

    @app.delete("/runs/{run_id}")
    async def cancel_run(run_id: str) -> dict[str, Any]:
        run = get_run(run_id)
        run.scope.cancel()
        with anyio.fail_after(60):
            await run.done.wait()
        return run.describe()

    @app.get("/runs/{run_id}/events")
    async def run_events(run_id: str, every: int = 1) -> StreamingResponse:
        run = get_run(run_id)

        async def events() -> AsyncIterator[str]:
            if run.status == "running":
                async with run.engine.subscribe(Events.ITERATION_COMPLETED(every=max(1, every))) as stream:
                    async for state in stream:
                        payload = {"epoch": state.epoch, "iteration": state.iteration, "loss": state.output}
                        yield f"event: progress\ndata: {json.dumps(payload)}\n\n"
            yield f"event: end\ndata: {json.dumps(run.describe())}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.state.runs = runs
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/service"))
    args = parser.parse_args()
    # Bounded: an open event stream must not hold the shutdown (and the trainings' final checkpoints) back.
    uvicorn.run(
        create_app(args.runs_dir), host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5
    )
