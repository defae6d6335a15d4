"""A training service: FastAPI + uvicorn, trainings as tasks in the app's lifespan task group.

    .venv/bin/python examples/service.py --port 8000 --runs-dir runs/service
    IGNITE_ASYNC_SERVICE_TOKEN=... .venv/bin/python examples/service.py --host 0.0.0.0   # or --token-file

    POST   /runs              start a run (JSON config, every field has a default: {} is a small run)
    GET    /runs/{id}         status (running, completed, failed, cancelled, failed-to-checkpoint), epoch,
                              iteration, metrics
    GET    /runs/{id}/events  progress as Server-Sent Events, until the run ends
    DELETE /runs/{id}         cancel: the run writes a final checkpoint and ends as "cancelled" (or as
                              "failed-to-checkpoint" if that checkpoint could not be written)

Training steps run in worker threads, so the server answers while runs train. Shutting the server down
(SIGTERM) cancels every running training; each writes a resumable checkpoint before the process exits.

Limits: at most --max-running runs train at once (429 with Retry-After beyond); a config's work is bounded
(hidden * batch_size, epochs * epoch_length, a 422 names the limit); request bodies are at most 64 KiB (413)
and must arrive within 5 s (408); finished runs are forgotten after --finished-ttl seconds or beyond
--keep-finished (their files stay on disk; their URLs answer 410). With a token (the environment variable
IGNITE_ASYNC_SERVICE_TOKEN or --token-file) every request needs "Authorization: Bearer <token>"; without one
the service listens on the loopback interface only.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import math
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import anyio.abc
import anyio.to_thread
import torch
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from torch import nn

from ignite_async import Engine, Events, InterruptHandlerError
from ignite_async.handlers import Checkpoint, DiskSaver, RNGStates

TOKEN_ENV = "IGNITE_ASYNC_SERVICE_TOKEN"

# Work per config. hidden * batch_size bounds the activations: about 12-20 bytes per element were measured
# (forward outputs and their gradients), so the limit is ~25 MiB per run, where 4096 * 65536 took 3 GB.
MAX_ACTIVATIONS = 1 << 20
MAX_ITERATIONS = 1_000_000  # epochs * epoch_length
# Each step seeds its batch with seed * SEED_STRIDE + iteration (see batch_seed): the largest seed keeps that
# below 2**63 at the last possible iteration, so no accepted config can overflow torch's seed.
SEED_STRIDE = 1_000_003
MAX_SEED = (2**63 - 1 - MAX_ITERATIONS) // SEED_STRIDE

MAX_BODY_BYTES = 64 * 1024  # a config is ~200 bytes; nothing larger is parsed
BODY_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5
RUN_ID = re.compile(r"[0-9a-f]{12}")


class RunConfig(BaseModel):
    """A training's configuration; every field has a default."""

    # allow_inf_nan=False: JSON's NaN and Infinity (and 1e999, which parses as inf) are refused with a 422.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(5, ge=1, le=100_000)
    epoch_length: int = Field(20, ge=1, le=100_000)
    hidden: int = Field(32, ge=1, le=4096)
    lr: float = Field(3e-3, gt=0, le=10)
    batch_size: int = Field(64, ge=1, le=65_536)
    step_delay: float = Field(0.0, ge=0, le=5, description="extra seconds per step (simulated slow work)")
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def bounded_work(self) -> RunConfig:
        if self.hidden * self.batch_size > MAX_ACTIVATIONS:
            raise PydanticCustomError(
                "activation_memory",
                "hidden * batch_size is {size}, over the limit of {limit} (an estimate of activation memory)",
                {"size": self.hidden * self.batch_size, "limit": MAX_ACTIVATIONS},
            )
        if self.epochs * self.epoch_length > MAX_ITERATIONS:
            raise PydanticCustomError(
                "too_many_iterations",
                "epochs * epoch_length is {iterations}, over the limit of {limit} iterations",
                {"iterations": self.epochs * self.epoch_length, "limit": MAX_ITERATIONS},
            )
        return self


def batch_seed(seed: int, iteration: int) -> int:
    """The seed of one step's batch: distinct per (seed, iteration), below 2**63 for every accepted config."""
    return seed * SEED_STRIDE + iteration


def finite(value: Any) -> float | None:
    """A metric as JSON can carry it: the strict JSON of responses has no NaN or Infinity (a 500 otherwise)."""
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class Run:
    id: str
    config: RunConfig
    engine: Engine
    directory: Path
    status: Literal["running", "completed", "failed", "cancelled", "failed-to-checkpoint"] = "running"
    error: str | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    finished_at: float | None = None  # time.monotonic() at the end, for eviction

    def describe(self) -> dict[str, Any]:
        state = self.engine.state
        return {
            "id": self.id,
            "status": self.status,
            "epoch": state.epoch,
            "iteration": state.iteration,
            "metrics": {k: finite(v) for k, v in state.metrics.items()},
            "error": self.error,
        }


def build_run(run_id: str, config: RunConfig, directory: Path) -> Run:
    torch.manual_seed(config.seed)
    model = nn.Sequential(nn.Linear(1, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def work(iteration: int) -> float:
        generator = torch.Generator().manual_seed(batch_seed(config.seed, iteration))
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
    except InterruptHandlerError as exc:  # cancelled, but no resumable checkpoint was written
        run.status, run.error = "failed-to-checkpoint", f"cancelled, but the final checkpoint failed: {exc.error!r}"
    except Exception as exc:
        run.status, run.error = "failed", repr(exc)
    finally:
        if run.status == "running":  # the whole server is shutting down
            run.status = "cancelled"
        run.finished_at = time.monotonic()
        run.done.set()


class BodyTimeout:
    """Answer 408 when a request's body has not fully arrived ``seconds`` after its headers.

    uvicorn bounds idle connections (timeout_keep_alive), not a body that trickles in, which would hold a
    request open for as long as its client likes.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.seconds
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:  # later receives wait for the disconnect (event streams): no deadline there
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                # An HTTPException, as Starlette's body limit raises: FastAPI answers it, and "close"
                # drops the connection instead of waiting for the rest of the body.
                detail = f"the request body did not arrive within {self.seconds:g} s"
                raise HTTPException(408, detail=detail, headers={"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)


class BearerToken(AuthenticationBackend):
    """Every request needs ``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        scheme, credentials = get_authorization_scheme_param(conn.headers.get("authorization"))
        # Starlette decodes headers as latin-1, so this gives back the bytes sent. compare_digest takes the
        # same time however much of a guess is right, so the token cannot be found a character at a time.
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode("latin-1"), self.token):
            raise AuthenticationError("this service needs an 'Authorization: Bearer <token>' header")
        return AuthCredentials(["authenticated"]), SimpleUser("client")


def unauthorized(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, without echoing each bad input: a NaN input cannot be written as strict JSON (which made
    the 422 a 500), and a client gains nothing from its own body sent back."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


def check_token(token: str) -> str:
    """A token as a header can carry it: non-empty printable ASCII without spaces."""
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("the token must be non-empty printable ASCII without spaces")
    return token


@dataclass
class Runs:
    """The runs a service holds: at most ``max_running`` training, finished ones for ``finished_ttl``
    seconds and at most ``keep_finished`` of them, so the memory held stays bounded."""

    directory: Path
    max_running: int
    keep_finished: int
    finished_ttl: float
    runs: dict[str, Run] = field(default_factory=dict)

    def evict(self) -> None:
        """Forget finished runs past their time or beyond the count (oldest first); their files stay."""
        now = time.monotonic()
        finished = sorted(
            (r for r in self.runs.values() if r.finished_at is not None), key=lambda r: r.finished_at or 0
        )
        excess = len(finished) - self.keep_finished
        for n, run in enumerate(finished):
            if n < excess or now - (run.finished_at or now) >= self.finished_ttl:
                del self.runs[run.id]

    def start(self, config: RunConfig, task_group: anyio.abc.TaskGroup) -> Run:
        self.evict()
        # Nothing awaits from this count to the insertion below: concurrent requests cannot share a slot.
        if sum(not run.done.is_set() for run in self.runs.values()) >= self.max_running:
            detail = f"{self.max_running} runs are training, the most this service runs at once; retry later"
            raise HTTPException(status_code=429, detail=detail, headers={"Retry-After": str(RETRY_AFTER_S)})
        run_id = uuid.uuid4().hex[:12]
        run = self.runs[run_id] = build_run(run_id, config, self.directory / run_id)
        task_group.start_soon(train, run)
        return run

    async def get(self, run_id: str) -> Run:
        """The run, or a 410 for one evicted (its directory exists), or a 404."""
        self.evict()
        if run_id in self.runs:
            return self.runs[run_id]
        directory = self.directory / run_id
        # The id is checked before it names a path. Files outlive the entry here (and restarts).
        if RUN_ID.fullmatch(run_id) and await anyio.Path(directory).is_dir():
            detail = (
                f"run {run_id!r} has ended and was evicted from the service's memory (it keeps "
                f"{self.keep_finished} finished runs for up to {self.finished_ttl:g} s); its files are in {directory}"
            )
            raise HTTPException(status_code=410, detail=detail)
        raise HTTPException(status_code=404, detail=f"no run {run_id!r}")


async def get_run(request: Request, run_id: str) -> Run:
    registry: Runs = request.app.state.registry
    return await registry.get(run_id)


RunDep = Annotated[Run, Depends(get_run)]


def create_app(
    runs_dir: Path,
    *,
    token: str | None = None,
    max_running: int = 4,
    keep_finished: int = 100,
    finished_ttl: float = 3600.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """The service. ``token``: require it as a bearer token on every request (None: no authentication;
    bind such an app to a loopback address only). At most ``max_running`` runs train at once (429 beyond).
    Finished runs stay in memory for ``finished_ttl`` seconds, and at most ``keep_finished`` of them. Bodies
    over ``max_body_bytes`` get a 413, and ones that take over ``body_timeout`` seconds to arrive a 408."""
    if max_running < 1 or keep_finished < 0 or finished_ttl < 0 or body_timeout <= 0:
        raise ValueError("max_running >= 1, keep_finished >= 0, finished_ttl >= 0 and body_timeout > 0")
    registry = Runs(runs_dir, max_running, keep_finished, finished_ttl)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            app.state.task_group = tg
            yield
            tg.cancel_scope.cancel()  # shutdown: every training writes its final checkpoint and ends

    # max_body_size: FastAPI refuses a larger Content-Length with a 413 before reading any of the body, and
    # counts a chunked body as it arrives.
    app = FastAPI(
        title="ignite_async training service",
        lifespan=lifespan,
        max_body_size=max_body_bytes,
        exception_handlers={RequestValidationError: validation_error},
    )
    app.add_middleware(BodyTimeout, seconds=body_timeout)
    if token is not None:
        # Added last, so outermost: a request without the token is refused before its body is read.
        # Middleware rather than a dependency, so /docs and /openapi.json are covered too.
        app.add_middleware(AuthenticationMiddleware, backend=BearerToken(check_token(token)), on_error=unauthorized)

    @app.post("/runs", status_code=201)
    async def start_run(config: RunConfig) -> dict[str, Any]:
        run = registry.start(config, app.state.task_group)
        return {"id": run.id, "status": run.status}

    @app.get("/runs/{run_id}")
    async def run_status(run: RunDep) -> dict[str, Any]:
        return run.describe()

    @app.delete("/runs/{run_id}")
    async def cancel_run(run: RunDep) -> dict[str, Any]:
        run.scope.cancel()
        with anyio.fail_after(60):
            await run.done.wait()
        return run.describe()

    @app.get("/runs/{run_id}/events")
    async def run_events(run: RunDep, every: Annotated[int, Query(ge=1)] = 1) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            if run.status == "running":
                async with run.engine.subscribe(Events.ITERATION_COMPLETED(every=every)) as stream:
                    async for state in stream:
                        payload = {"epoch": state.epoch, "iteration": state.iteration, "loss": finite(state.output)}
                        yield f"event: progress\ndata: {json.dumps(payload)}\n\n"
            yield f"event: end\ndata: {json.dumps(run.describe())}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.state.registry = registry
    app.state.runs = registry.runs
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another name may resolve to any interface


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="a non-loopback address needs a token")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/service"))
    # A file or the environment, never the command line, which other local users can read (ps).
    parser.add_argument("--token-file", type=Path, help=f"a file holding the bearer token (else ${TOKEN_ENV})")
    parser.add_argument("--max-running", type=int, default=4, help="runs training at once (429 beyond)")
    parser.add_argument("--keep-finished", type=int, default=100, help="finished runs kept in memory")
    parser.add_argument("--finished-ttl", type=float, default=3600.0, help="seconds a finished run is kept")
    parser.add_argument("--max-connections", type=int, default=100, help="open connections (503 beyond)")
    args = parser.parse_args(argv)

    if args.token_file is not None:
        try:
            token: str | None = args.token_file.read_text().strip()
        except OSError as exc:
            parser.error(f"cannot read --token-file: {exc}")
        source = str(args.token_file)
    else:
        token, source = environ.get(TOKEN_ENV), f"${TOKEN_ENV}"
    if token is not None:
        try:
            check_token(token)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
    elif not is_loopback(args.host):
        parser.error(
            f"--host {args.host} would serve other machines without authentication: "
            f"set {TOKEN_ENV} or --token-file, or use a loopback address such as 127.0.0.1"
        )
    try:
        app = create_app(
            args.runs_dir,
            token=token,
            max_running=args.max_running,
            keep_finished=args.keep_finished,
            finished_ttl=args.finished_ttl,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if token is None:
        print(f"service: no token, so no authentication: listening on {args.host} only", file=sys.stderr, flush=True)
    else:
        print(f"service: every request needs the bearer token from {source}", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # an open event stream must not hold the final checkpoints back
        timeout_keep_alive=5,  # idle connections are closed
        limit_concurrency=args.max_connections,
    )


if __name__ == "__main__":
    main()
