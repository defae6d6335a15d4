"""A training service: FastAPI + uvicorn, trainings as tasks in the app's lifespan task group.

    .venv/bin/python -m uvicorn examples.service:app --port 8000        # configured by IGNITE_ASYNC_SERVICE_*
    .venv/bin/python examples/service.py --port 8000 --runs-dir runs/service
    IGNITE_ASYNC_SERVICE_TOKEN=... .venv/bin/python examples/service.py --host 0.0.0.0   # or --token-file

    POST   /runs              start a run (JSON config, every field has a default: {} is a small run)
    GET    /runs              every run held: status and progress
    GET    /runs/{id}         status (running, completed, failed, cancelled, failed-to-checkpoint), epoch and
                              iteration of the last completed step, its output, metrics, the totals
    GET    /runs/{id}/events  progress as Server-Sent Events, until the run ends
    DELETE /runs/{id}         cancel: the run writes a final checkpoint and ends as "cancelled" (or as
                              "failed-to-checkpoint" if that checkpoint could not be written)
    POST   /runs/{id}/resume  train a finished run on from its newest checkpoint, optionally to more epochs
                              ({"epochs": n}); an evicted run too, and one from before a restart

Training steps run in worker threads, so the server answers while runs train. SIGTERM (or Ctrl+C) cancels
every training; each writes a resumable checkpoint, its event streams end, and the process exits.

Configuration: IGNITE_ASYNC_SERVICE_RUNS_DIR, _MAX_RUNNING, _KEEP_FINISHED, _FINISHED_TTL, _BODY_TIMEOUT,
_TOKEN and _TOKEN_FILE (the file wins); the command line's flags override them.

Limits: at most max_running runs train at once (429 with Retry-After beyond); a config's work is bounded
(hidden * batch_size, epochs * epoch_length, a 422 names the limit); request bodies are at most 64 KiB (413)
and must arrive within 5 s (408); finished runs are forgotten after finished_ttl seconds or beyond
keep_finished (their files stay on disk; their URLs answer 410). With a token every request needs
"Authorization: Bearer <token>"; without one only connections to and from a loopback address are answered.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import re
import signal
import sys
import threading
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
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from torch import nn

from ignite_async import Engine, Events, InterruptHandlerError
from ignite_async.handlers import Checkpoint, CheckpointInUseError, DiskSaver, RNGStates

ENV_PREFIX = "IGNITE_ASYNC_SERVICE_"
TOKEN_ENV = f"{ENV_PREFIX}TOKEN"

# Work per config. hidden * batch_size bounds the activations: about 12-20 bytes per element were measured
# (forward outputs and their gradients), so the limit is ~25 MiB per run, where 4096 * 65536 took 3 GB.
MAX_ACTIVATIONS = 1 << 20
MAX_ITERATIONS = 1_000_000  # epochs * epoch_length
MAX_EPOCHS = 100_000
# Each step seeds its batch with seed * SEED_STRIDE + iteration (see batch_seed): the largest seed keeps that
# below 2**63 at the last possible iteration, so no accepted config can overflow torch's seed.
SEED_STRIDE = 1_000_003
MAX_SEED = (2**63 - 1 - MAX_ITERATIONS) // SEED_STRIDE

MAX_BODY_BYTES = 64 * 1024  # a config is ~200 bytes; nothing larger is parsed
BODY_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5
RUN_ID = re.compile(r"[0-9a-f]{12}")
CONFIG_FILE = "config.json"  # in each run's directory: what a resume after eviction or a restart trains
# Without a token, the Host header must name the loopback: a web page whose domain was re-pointed at
# 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

Status = Literal["running", "completed", "failed", "cancelled", "failed-to-checkpoint"]


class Settings(BaseModel):
    """The service's configuration. :meth:`from_env` reads it from ``IGNITE_ASYNC_SERVICE_<FIELD>`` variables
    (``IGNITE_ASYNC_SERVICE_MAX_RUNNING=2``); the command line builds it by field name."""

    model_config = ConfigDict(
        frozen=True,
        allow_inf_nan=False,
        alias_generator=AliasGenerator(validation_alias=lambda name: ENV_PREFIX + name.upper()),
        validate_by_name=True,
    )

    runs_dir: Path = Path("runs/service")
    token: str | None = None
    token_file: Path | None = None
    max_running: int = Field(4, ge=1)
    keep_finished: int = Field(100, ge=0)
    finished_ttl: float = Field(3600.0, ge=0)
    body_timeout: float = Field(BODY_TIMEOUT_S, gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        # Only the prefixed names: a variable that happens to be called "token" is not the token.
        return cls.model_validate({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}, by_name=False)

    def read_token(self) -> tuple[str | None, str]:
        """The token (the file wins over the variable) and where it came from.

        :raises ValueError: for a token a header cannot carry. :raises OSError: for a file that cannot be read.
        """
        token, source = self.token, f"${TOKEN_ENV}"
        if self.token_file is not None:
            token, source = self.token_file.read_text().strip(), str(self.token_file)
        if token is not None:
            try:
                check_token(token)
            except ValueError as exc:
                raise ValueError(f"{source}: {exc}") from None
        return token, source


class RunConfig(BaseModel):
    """A training's configuration; every field has a default."""

    # allow_inf_nan=False: JSON's NaN and Infinity (and 1e999, which parses as inf) are refused with a 422.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(5, ge=1, le=MAX_EPOCHS)
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


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS, description="the total to train to (default: the run's)")


class ResumedFrom(BaseModel):
    checkpoint: str = Field(description="the checkpoint's file name, in the run's directory")
    epoch: int
    iteration: int


class RunStatus(BaseModel):
    # Non-finite floats (a diverged loss) are written as null: strict JSON has no NaN (pydantic's default).
    id: str
    status: Status
    epoch: int = Field(description="of the last completed iteration")
    iteration: int = Field(description="the last completed iteration")
    max_epochs: int
    max_iterations: int
    output: float | None = Field(description="the last completed iteration's output (its loss)")
    metrics: dict[str, float | None]
    error: str | None
    resumed_from: ResumedFrom | None = Field(description="where the latest resume started")


class Progress(BaseModel):
    epoch: int
    iteration: int
    loss: float | None


def batch_seed(seed: int, iteration: int) -> int:
    """The seed of one step's batch: distinct per (seed, iteration), below 2**63 for every accepted config."""
    return seed * SEED_STRIDE + iteration


@dataclass
class Run:
    id: str
    config: RunConfig
    engine: Engine
    directory: Path
    to_save: dict[str, Any]
    checkpointer: Checkpoint
    status: Status = "running"
    error: str | None = None
    resumed_from: ResumedFrom | None = None
    started_at: tuple[int, int] = (0, 0)  # (epoch, iteration): 0, or where a resume started
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    finished_at: float | None = None  # time.monotonic() at the end, for eviction

    def describe(self) -> RunStatus:
        # As of the last completed iteration: engine.state shows the step in progress, with output None (the
        # engine clears it when an iteration starts). Before the first, where the run started.
        state = self.engine.last_completed_state()
        epoch, iteration = (state.epoch, state.iteration) if state is not None else self.started_at
        return RunStatus(
            id=self.id,
            status=self.status,
            epoch=epoch,
            iteration=iteration,
            max_epochs=self.config.epochs,
            max_iterations=self.config.epochs * self.config.epoch_length,
            output=state.output if state is not None else None,
            metrics=(state or self.engine.state).metrics,
            error=self.error,
            resumed_from=self.resumed_from,
        )

    def save_config(self) -> None:
        """Write config.json, atomically: a resume after eviction or a restart trains what it says."""
        partial = self.directory / f".{CONFIG_FILE}.partial"
        partial.write_text(self.config.model_dump_json())
        os.replace(partial, self.directory / CONFIG_FILE)


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
    # require_empty=False: a resumed run's checkpoints are counted (last_checkpoint, n_saved), not refused.
    checkpointer = Checkpoint(to_save, DiskSaver(directory, require_empty=False), n_saved=1)
    engine.add_event_handler(Events.EPOCH_COMPLETED | Events.INTERRUPT, checkpointer)
    return Run(run_id, config, engine, directory, to_save, checkpointer)


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
        run.checkpointer.close()  # its checkpoint names are free for a resume
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # another name may resolve to any interface
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1, a dual-stack socket's view of 127.0.0.1
    return address.is_loopback


def is_local(scope: Scope) -> bool:
    """Whether both ends of the request's connection are loopback addresses (or it came over a Unix socket)."""
    server, client = scope.get("server"), scope.get("client")
    if server is not None and server[1] is None:
        return True  # uvicorn --uds: a socket file, which only this machine can reach
    return server is not None and client is not None and is_loopback(server[0]) and is_loopback(client[0])


class LoopbackOnly:
    """Without a token, answer 403 to any request whose connection is not loopback at both ends.

    The app cannot know the address it was bound to (``uvicorn --host``), but every request's scope names its
    connection's two ends: ``server``, the local address it reached, and ``client``, the peer, which is the
    original client when uvicorn trusts a local proxy's ``X-Forwarded-For`` (``--forwarded-allow-ips``,
    127.0.0.1 by default). So ``uvicorn examples.service:app --host 0.0.0.0`` without a token still serves
    this machine only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_local(scope):
            detail = f"this service has no token, so it answers only loopback connections: set {TOKEN_ENV}"
            await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


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


def without_inputs(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in error.items() if k != "input"} for error in errors]


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, without echoing each bad input: a NaN input cannot be written as strict JSON (which made
    the 422 a 500), and a client gains nothing from its own body sent back."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(without_inputs(exc.errors()))})


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
    resuming: set[str] = field(default_factory=set)  # loading a checkpoint: each holds a training slot
    closing: bool = False  # the server is shutting down

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

    def check_room(self) -> None:
        """Raise the 503 or 429 that a new training would get now."""
        if self.closing:
            raise HTTPException(503, detail="the service is shutting down", headers={"Connection": "close"})
        if sum(not run.done.is_set() for run in self.runs.values()) + len(self.resuming) >= self.max_running:
            detail = f"{self.max_running} runs are training, the most this service runs at once; retry later"
            raise HTTPException(status_code=429, detail=detail, headers={"Retry-After": str(RETRY_AFTER_S)})

    def start(self, config: RunConfig, task_group: anyio.abc.TaskGroup) -> Run:
        self.evict()
        # Nothing awaits from this check to the insertion below: concurrent requests cannot share a slot.
        self.check_room()
        run_id = uuid.uuid4().hex[:12]
        run = self.runs[run_id] = build_run(run_id, config, self.directory / run_id)
        run.save_config()
        task_group.start_soon(train, run)
        return run

    async def stored(self, run_id: str) -> bool:
        # The id is checked before it names a path. Files outlive the entry here (and restarts).
        return RUN_ID.fullmatch(run_id) is not None and await anyio.Path(self.directory / run_id).is_dir()

    def evicted(self, run_id: str, why: str = "") -> HTTPException:
        detail = (
            f"run {run_id!r} has ended and was evicted from the service's memory (it keeps {self.keep_finished} "
            f"finished runs for up to {self.finished_ttl:g} s); its files are in {self.directory / run_id}{why}"
        )
        return HTTPException(status_code=410, detail=detail)

    async def get(self, run_id: str) -> Run:
        """The run, or a 410 for one evicted (its directory exists), or a 404."""
        self.evict()
        if run_id in self.runs:
            return self.runs[run_id]
        if await self.stored(run_id):
            raise self.evicted(run_id, f"; POST /runs/{run_id}/resume trains it on from its last checkpoint")
        raise HTTPException(status_code=404, detail=f"no run {run_id!r}")

    async def resume(self, run_id: str, epochs: int | None, task_group: anyio.abc.TaskGroup) -> Run:
        """Train a finished run on from its newest checkpoint, in its directory, to ``epochs`` (default: its
        own). A run no longer held (evicted, or from before a restart) is read back from its directory."""
        self.evict()
        if run_id not in self.runs and not await self.stored(run_id):
            raise HTTPException(status_code=404, detail=f"no run {run_id!r}")
        held = self.runs.get(run_id)  # read after the await: from here to resuming.add, nothing awaits
        if (held is not None and not held.done.is_set()) or run_id in self.resuming:
            raise HTTPException(status_code=409, detail=f"run {run_id!r} is running: cancel it first")
        self.check_room()
        self.resuming.add(run_id)  # before the first await: a second resume of the same run gets a 409
        run: Run | None = None
        try:
            config = held.config if held is not None else await anyio.to_thread.run_sync(self.stored_config, run_id)
            try:
                config = RunConfig.model_validate({**config.model_dump(), "epochs": epochs or config.epochs})
            except ValidationError as exc:  # over the work limit with this run's epoch_length
                errors = without_inputs(exc.errors(include_url=False))
                raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
            try:
                run = build_run(run_id, config, self.directory / run_id)
            except CheckpointInUseError as exc:  # another process trains it, in the same directory
                raise HTTPException(status_code=409, detail=str(exc)) from None
            checkpoint = run.checkpointer.last_checkpoint
            if not isinstance(checkpoint, Path):
                why = "; it has no checkpoint to resume from"
                raise self.evicted(run_id, why) if held is None else HTTPException(409, detail=f"run {run_id!r}{why}")
            try:
                await anyio.to_thread.run_sync(Checkpoint.load_objects, run.to_save, checkpoint)
            except ValueError as exc:  # truncated or corrupt: named
                raise HTTPException(status_code=409, detail=f"cannot resume run {run_id!r}: {exc}") from None
            state = run.engine.state
            if state.iteration >= config.epochs * config.epoch_length:
                detail = (
                    f"run {run_id!r} is at epoch {state.epoch} (iteration {state.iteration}) of {config.epochs}: "
                    "ask for more epochs"
                )
                raise HTTPException(status_code=409, detail=detail)
            if self.closing:  # since the check above
                raise HTTPException(503, detail="the service is shutting down", headers={"Connection": "close"})
            run.resumed_from = ResumedFrom(checkpoint=checkpoint.name, epoch=state.epoch, iteration=state.iteration)
            run.started_at = (state.epoch, state.iteration)
            run.save_config()
            self.runs[run_id] = run
            task_group.start_soon(train, run)
            return run
        except BaseException:
            if run is not None:
                run.checkpointer.close()  # not started: give its names back
            raise
        finally:
            self.resuming.discard(run_id)

    def stored_config(self, run_id: str) -> RunConfig:
        try:
            return RunConfig.model_validate_json((self.directory / run_id / CONFIG_FILE).read_bytes())
        except (OSError, ValidationError):
            raise self.evicted(run_id, f", without a readable {CONFIG_FILE} to resume it from") from None

    def shut_down(self) -> None:
        """Refuse new trainings and cancel every run: each writes its final checkpoint, its streams end."""
        self.closing = True
        for run in self.runs.values():
            run.scope.cancel()


async def get_run(request: Request, run_id: str) -> Run:
    registry: Runs = request.app.state.registry
    return await registry.get(run_id)


RunDep = Annotated[Run, Depends(get_run)]


async def shut_down_on_signal(registry: Runs) -> None:
    """On SIGTERM or SIGINT, cancel the trainings, then hand the signal on to uvicorn's own handler.

    uvicorn starts the lifespan's shutdown only once the open responses have ended (or after
    timeout_graceful_shutdown, by cancelling them: "Exception in ASGI application"), and an event stream ends
    only with its run. So the app takes the signal first: every run ends (writing its final checkpoint), each
    stream sends its "end" event and closes, and uvicorn then finds nothing left to wait for. Only where
    uvicorn's handler is installed (its main thread; not under another server, where streams end with the
    lifespan as before).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    uvicorns = {
        s: h for s, h in handlers.items() if callable(h) and isinstance(getattr(h, "__self__", None), uvicorn.Server)
    }
    if not uvicorns:
        return
    with anyio.open_signal_receiver(*uvicorns) as signals:
        async for signum in signals:
            registry.shut_down()
            uvicorns[signum](signum, None)  # uvicorn's shutdown, or its force-quit on a second Ctrl+C


def create_app(
    runs_dir: Path,
    *,
    token: str | None = None,
    token_source: str = "the token given",
    max_running: int = 4,
    keep_finished: int = 100,
    finished_ttl: float = 3600.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """The service, storing runs under ``runs_dir`` (created at startup, not here). ``token``: require it as a
    bearer token on every request (``token_source`` says where it came from, at startup); None: answer only
    loopback connections. At most ``max_running`` runs train at once (429 beyond). Finished runs stay in
    memory for ``finished_ttl`` seconds, and at most ``keep_finished`` of them. Bodies over ``max_body_bytes``
    get a 413, and ones that take over ``body_timeout`` seconds to arrive a 408."""
    if max_running < 1 or keep_finished < 0 or finished_ttl < 0 or body_timeout <= 0:
        raise ValueError("max_running >= 1, keep_finished >= 0, finished_ttl >= 0 and body_timeout > 0")
    if token is not None:
        check_token(token)
    registry = Runs(runs_dir, max_running, keep_finished, finished_ttl)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.Path(runs_dir).mkdir(parents=True, exist_ok=True)
        where = await anyio.Path(runs_dir).resolve()
        if token is None:
            auth = f"no token ({TOKEN_ENV} unset), so no authentication: only loopback connections are answered"
        else:
            auth = f"every request needs the bearer token from {token_source}"
        print(f"service: runs go to {where}; {auth}", file=sys.stderr, flush=True)
        async with anyio.create_task_group() as tg:
            app.state.task_group = tg
            tg.start_soon(shut_down_on_signal, registry)
            yield
            registry.shut_down()  # every training writes its final checkpoint and ends
            tg.cancel_scope.cancel()

    # max_body_size: FastAPI refuses a larger Content-Length with a 413 before reading any of the body, and
    # counts a chunked body as it arrives.
    app = FastAPI(
        title="ignite_async training service",
        lifespan=lifespan,
        max_body_size=max_body_bytes,
        exception_handlers={RequestValidationError: validation_error},
    )
    app.add_middleware(BodyTimeout, seconds=body_timeout)
    # Each added middleware wraps the ones before: the last is outermost, so a request without the token
    # (or from elsewhere) is refused before its body is read. Middleware rather than dependencies, so that
    # /docs and /openapi.json are covered too.
    if token is not None:
        app.add_middleware(AuthenticationMiddleware, backend=BearerToken(token), on_error=unauthorized)
    else:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
        app.add_middleware(LoopbackOnly)

    @app.post("/runs", status_code=201)
    async def start_run(config: RunConfig) -> RunStatus:
        return registry.start(config, app.state.task_group).describe()

    @app.get("/runs")
    async def list_runs() -> list[RunStatus]:
        registry.evict()
        return [run.describe() for run in registry.runs.values()]

    @app.get("/runs/{run_id}")
    async def run_status(run: RunDep) -> RunStatus:
        return run.describe()

    @app.delete("/runs/{run_id}")
    async def cancel_run(run: RunDep) -> RunStatus:
        run.scope.cancel()
        with anyio.fail_after(60):
            await run.done.wait()
        return run.describe()

    @app.post("/runs/{run_id}/resume")
    async def resume_run(run_id: str, resume: Annotated[ResumeRequest | None, Body()] = None) -> RunStatus:
        epochs = resume.epochs if resume is not None else None
        return (await registry.resume(run_id, epochs, app.state.task_group)).describe()

    @app.get("/runs/{run_id}/events", response_class=EventSourceResponse)
    async def run_events(run: RunDep, every: Annotated[int, Query(ge=1)] = 1) -> AsyncIterator[ServerSentEvent]:
        # The stream ends with its run: cancelled by DELETE, by SIGTERM (see shut_down_on_signal) or at the end.
        if not run.done.is_set():
            async with run.engine.subscribe(Events.ITERATION_COMPLETED(every=every)) as stream:
                async for state in stream:
                    progress = Progress(epoch=state.epoch, iteration=state.iteration, loss=state.output)
                    yield ServerSentEvent(event="progress", data=progress)
        await run.done.wait()  # the final status, once train() has set it
        yield ServerSentEvent(event="end", data=run.describe())

    app.state.registry = registry
    app.state.runs = registry.runs
    return app


def app_from_settings(settings: Settings, token: str | None, token_source: str) -> FastAPI:
    """The service as ``settings`` configure it (from the environment, or the command line over it)."""
    return create_app(
        settings.runs_dir,
        token=token,
        token_source=token_source,
        max_running=settings.max_running,
        keep_finished=settings.keep_finished,
        finished_ttl=settings.finished_ttl,
        body_timeout=settings.body_timeout,
    )


def app_from_env(environ: Mapping[str, str] = os.environ) -> FastAPI:
    """The app of ``uvicorn examples.service:app``, configured by ``IGNITE_ASYNC_SERVICE_*`` variables."""
    try:
        settings = Settings.from_env(environ)
        token, source = settings.read_token()
    except (ValueError, OSError) as exc:  # a bad variable is named; no traceback
        raise SystemExit(f"service: {exc}") from None
    return app_from_settings(settings, token, source)


# Built at import, for `uvicorn examples.service:app`; nothing is started or created until the lifespan.
app = app_from_env()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        env = Settings.from_env(environ)  # the defaults of the flags
    except ValueError as exc:
        parser.error(str(exc))
    parser.add_argument("--host", default="127.0.0.1", help="a non-loopback address needs a token")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--runs-dir", type=Path, default=env.runs_dir)
    # A file or the environment, never the command line, which other local users can read (ps).
    parser.add_argument("--token-file", type=Path, default=env.token_file, help=f"the bearer token (else ${TOKEN_ENV})")
    parser.add_argument("--max-running", type=int, default=env.max_running, help="runs training at once (429 beyond)")
    parser.add_argument("--keep-finished", type=int, default=env.keep_finished, help="finished runs kept in memory")
    parser.add_argument("--finished-ttl", type=float, default=env.finished_ttl, help="seconds a finished run is kept")
    parser.add_argument("--max-connections", type=int, default=100, help="open connections (503 beyond)")
    args = parser.parse_args(argv)
    try:
        settings = Settings(
            runs_dir=args.runs_dir,
            token=env.token,
            token_file=args.token_file,
            max_running=args.max_running,
            keep_finished=args.keep_finished,
            finished_ttl=args.finished_ttl,
            body_timeout=env.body_timeout,
        )
        token, source = settings.read_token()
    except ValidationError as exc:
        parser.error("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()))
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if token is None and not is_loopback(args.host):
        parser.error(
            f"--host {args.host} would serve other machines without authentication: "
            f"set {TOKEN_ENV} or --token-file, or use a loopback address such as 127.0.0.1"
        )
    service = app_from_settings(settings, token, source)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"service: listening on http://{host}:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(
        service,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # a client that stops reading must not hold the exit back for long
        timeout_keep_alive=5,  # idle connections are closed
        limit_concurrency=args.max_connections,
    )


if __name__ == "__main__":
    main()
