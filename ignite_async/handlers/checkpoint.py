"""Checkpointing that does not stall training and survives crashes.

When the event fires, a :class:`Checkpoint` decides (file name, retention, as pytorch-ignite 0.5.5 does) and
takes a *snapshot* inline: every ``state_dict()`` of ``to_save``, with tensors copied to the CPU (CUDA tensors
into reused pinned buffers, without blocking: see :func:`snapshot_state`). Serializing and writing then run in
a worker thread as a background task of the engine (at most one write in flight), so training goes on at once
and the file holds exactly the state at the firing. A firing that finds the previous write still in flight
waits for it, then writes from the live state while training waits, as a blocking save does: a copy would
only add to the wait. A failed write fails the run. A checkpoint counts (``last_checkpoint``, retention, the
list saved with ``include_self``) only once its file is durable, and older files are deleted only after that.

:class:`DiskSaver` writes atomically: to a temporary file in the same directory named after the writing
process (host and PID), flushed and fsynced, renamed over the final name, then the directory fsynced.
Temporary files whose writer is provably gone (this host, a PID that no longer runs) are removed when a
DiskSaver is created; others are left alone, since a live process may be writing them. Each checkpoint name
(``{prefix}_{name}``) in a directory belongs to one live Checkpoint at a time, through an ``flock`` on a
lock file, so two trainers that share a directory by mistake fail at once instead of overwriting and pruning
each other's files.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import inspect
import numbers
import os
import pickle
import re
import socket
import string
import sys
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import torch
from torch import nn

from ignite_async._threads import run_sync
from ignite_async.distributed.comm import get_rank
from ignite_async.engine import Engine, EventEnum
from ignite_async.engine.background import BackgroundHandler
from ignite_async.handlers._snapshot import StateSnapshot, snapshot_state

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: names are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BaseSaveHandler",
    "Checkpoint",
    "CheckpointEvents",
    "CheckpointInUseError",
    "DiskSaver",
    "ModelCheckpoint",
    "StateSnapshot",
    "snapshot_state",
]

_PARTIAL = ".partial"  # suffix of DiskSaver's temporary files: never a complete checkpoint
_HOST = socket.gethostname().replace("@", "_").replace("/", "_")
# .{final name}.{host}@{pid}.{random}.partial
_PARTIAL_NAME = re.compile(r"^\.(?P<final>.+)\.(?P<host>[^@/]+)@(?P<pid>\d+)\.[^.]+" + re.escape(_PARTIAL) + "$")


class CheckpointEvents(EventEnum):
    """Events of :class:`Checkpoint`, registered on an engine by its first firing there (pytorch-ignite's).

    ``SAVED_CHECKPOINT`` fires once a checkpoint is durable and counted: its handlers find
    ``checkpointer.last_checkpoint`` naming the new file, whole, while training goes on.

    >>> import asyncio, tempfile
    >>> import torch
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import Checkpoint, CheckpointEvents
    >>> trainer = Engine(lambda e, b: None)
    >>> trainer.register_events(*CheckpointEvents)  # to attach handlers before the first checkpoint
    >>> saved = []
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     checkpointer = Checkpoint({"model": torch.nn.Linear(1, 1)}, directory, n_saved=1)
    ...     _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    ...     _ = trainer.add_event_handler(
    ...         Checkpoint.SAVED_CHECKPOINT, lambda e: saved.append(checkpointer.last_checkpoint.name)
    ...     )
    ...     _ = asyncio.run(trainer.run([0, 1], max_epochs=2))
    ...     checkpointer.close()
    >>> saved
    ['model_2.pt', 'model_4.pt']
    """

    SAVED_CHECKPOINT = "saved_checkpoint"


class CheckpointInUseError(RuntimeError):
    """Another live Checkpoint (in this process or another) writes checkpoints of the same name in the same
    directory: the two would overwrite and prune each other's files."""


class BaseSaveHandler(ABC):
    """Where checkpoints go. ``__call__`` and ``remove`` run in a worker thread, never on the event loop.

    Subclasses implement ``__call__`` and ``remove``; the other methods are optional refinements.
    """

    #: Set to False if ``__call__`` keeps no reference to the checkpoint's tensors once it returns: the
    #: Checkpoint then copies later snapshots into the same memory, which blocks training for less time, and
    #: where saves come faster than they are written it passes the live CPU tensors uncopied while training
    #: waits for ``__call__`` to return (a blocking save, with no copy on top).
    keeps_references: bool = True

    @abstractmethod
    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Store ``checkpoint`` under ``filename``; return only once it is durable."""

    @abstractmethod
    def remove(self, filename: str) -> None:
        """Delete the checkpoint stored under ``filename``."""

    def existing(self) -> list[str]:
        """Names of the checkpoints stored already (a resumed run's): a Checkpoint counts its own among them."""
        return []

    def claim(self, basename: str) -> None:  # noqa: B027 - optional: by default names are not reserved
        """Reserve the names ``{basename}*`` for the caller; raise :class:`CheckpointInUseError` if a live
        Checkpoint has them already."""


class DiskSaver(BaseSaveHandler):
    """Save checkpoints as files in ``dirname`` with ``torch.save``, atomically and durably.

    :param dirname: the directory; created (with parents) if ``create_dir``.
    :param atomic: write to a temporary file and rename it, so a crash never leaves a partial checkpoint
        under a checkpoint's name.
    :param require_empty: refuse a directory that already holds ``.pt`` files. With ``False`` (a resumed
        run), a Checkpoint counts the files it finds under its own names in its ``n_saved``.
    :param save_on_rank: in a distributed job, the one rank that writes (and checks the directory); the
        others do nothing.
    :raises OSError: naming the directory if it cannot be created; when a write fails (``errno.ENOSPC`` for a
        full disk), naming the file and the directory (the previous checkpoint is left intact).
    :raises ValueError: if it does not exist (and may not be created) or holds checkpoints with ``require_empty``.
    """

    def __init__(
        self,
        dirname: str | Path,
        *,
        atomic: bool = True,
        create_dir: bool = True,
        require_empty: bool = True,
        save_on_rank: int = 0,
        **torch_save_kwargs: Any,
    ) -> None:
        self.keeps_references = False  # the tensors are serialized, then let go
        self.dirname = Path(dirname).expanduser()
        self._atomic = atomic
        self._kwargs = torch_save_kwargs
        self.save_on_rank = save_on_rank
        self._locks: dict[str, int] = {}  # basename -> the descriptor of its flock'ed lock file
        weakref.finalize(self, _close_all, self._locks)  # a saver that is dropped gives its names up
        if get_rank() != save_on_rank:
            return  # other ranks write nothing; the directory may not even be theirs to see
        if create_dir and not self.dirname.exists():
            try:
                self.dirname.mkdir(parents=True)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot create checkpoint directory {self.dirname}: {exc.strerror}") from exc
        if not self.dirname.is_dir():
            raise ValueError(f"checkpoint directory {self.dirname} does not exist")
        self._remove_abandoned_partials()
        if require_empty:
            present = sorted(p.name for p in self.dirname.glob("*.pt"))
            if present:
                raise ValueError(
                    f"checkpoint directory {self.dirname} already holds {present}; "
                    "pass require_empty=False to use it anyway"
                )

    def _remove_abandoned_partials(self) -> None:
        """Temporary files of writers that are provably gone: from this host, by a PID that no longer runs."""
        for leftover in self.dirname.glob(f".*{_PARTIAL}"):
            match = _PARTIAL_NAME.match(leftover.name)
            if match and match["host"] == _HOST and not _pid_alive(int(match["pid"])):
                leftover.unlink(missing_ok=True)

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        if get_rank() != self.save_on_rank:
            return
        path = self.dirname / filename
        if not self._atomic:
            with _naming_write_errors(path), open(path, "wb") as f:
                self._save(checkpoint, f)
            return
        with _naming_write_errors(path):  # a directory that is not writable fails here, naming the checkpoint
            fd, tmp = _create_partial(self.dirname, filename)
        try:
            with _naming_write_errors(path), os.fdopen(fd, "wb") as f:
                self._save(checkpoint, f)
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(self.dirname)  # the rename itself is durable only once the directory is

    def _save(self, checkpoint: Mapping[str, Any], f: IO[bytes]) -> None:
        writer = _RecordingWriter(f)
        try:
            torch.save(checkpoint, writer, **self._kwargs)  # type: ignore[arg-type]
        except RuntimeError as exc:
            # torch reports a failed write as "[enforce fail at inline_container.cc] unexpected pos": the
            # OSError underneath (a full disk) is the cause worth naming.
            if writer.error is not None:
                raise writer.error from exc
            raise
        f.flush()

    def remove(self, filename: str) -> None:
        if get_rank() == self.save_on_rank:
            (self.dirname / filename).unlink(missing_ok=True)

    def existing(self) -> list[str]:
        if get_rank() != self.save_on_rank:
            return []
        return sorted(p.name for p in self.dirname.iterdir() if p.is_file() and not p.name.startswith("."))

    def claim(self, basename: str) -> None:
        """Hold an ``flock`` on ``.{basename}.lock`` in the directory until :meth:`close` (or until this saver
        is garbage-collected, or its process ends).

        :raises CheckpointInUseError: naming the directory, the name, and the process that holds it.
        """
        if fcntl is None or get_rank() != self.save_on_rank or basename in self._locks:
            return
        path = self.dirname / f".{basename}.lock"
        for attempt in range(2):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                if holder == _holder():
                    if attempt == 0:
                        gc.collect()  # the holder may be an unreachable Checkpoint (a notebook cell run again)
                        continue
                    holder = "in this process"
                raise CheckpointInUseError(
                    f"checkpoints named {basename!r} in {self.dirname} are being written by another live "
                    f"Checkpoint ({holder}); two trainers must not share checkpoint names: give this one "
                    "another directory or filename_prefix, or close the other one (checkpoint.close())"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, (_holder() + "\n").encode(), 0)
            self._locks[basename] = fd
            return

    def close(self) -> None:
        """Release the names claimed (see :meth:`claim`); another Checkpoint may then write them."""
        _close_all(self._locks)


def _create_partial(dirname: Path, filename: str) -> tuple[int, str]:
    """Create a new, empty temporary file for ``filename`` (see ``_PARTIAL_NAME``); return its descriptor and path.

    Created with mode 0o666 for the kernel to apply the umask (and a default ACL), as ``open()`` and
    ``torch.save(path)`` do: ``mkstemp`` would make it 0o600 whatever the umask, and the rename keeps the mode.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    prefix = f".{filename}.{_HOST}@{os.getpid()}."
    while True:
        path = dirname / f"{prefix}{os.urandom(6).hex()}{_PARTIAL}"
        try:
            return os.open(path, flags, 0o666), str(path)
        except FileExistsError:  # pragma: no cover - 48 random bits: a clash is all but impossible
            continue


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


class _CallableSaver(BaseSaveHandler):
    """A plain callable ``save_handler(checkpoint, filename[, metadata])``, as pytorch-ignite accepts: called in
    a worker thread; nothing is removed (pytorch-ignite calls ``remove`` only on a BaseSaveHandler)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.takes_metadata = _takes_metadata(fn)

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        if self.takes_metadata:
            self.fn(checkpoint, filename, metadata)
        else:
            self.fn(checkpoint, filename)

    def remove(self, filename: str) -> None:
        pass


def _takes_metadata(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is called ``fn(checkpoint, filename, metadata)`` or ``fn(checkpoint, filename)``.

    Decided once from the signature, where pytorch-ignite retries without ``metadata`` on any TypeError
    (one raised inside the handler included).
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins): pytorch-ignite's first form
        return True
    for count, takes in ((3, True), (2, False)):
        try:
            signature.bind(*range(count))
        except TypeError:
            continue
        return takes
    raise TypeError(
        f"save_handler {fn!r} must take (checkpoint, filename, metadata) or (checkpoint, filename), "
        f"its signature is {signature}"
    )


class _RecordingWriter:
    """A file wrapper that remembers the OSError of a failed write, which torch.save turns into a RuntimeError."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._f.flush()


@contextlib.contextmanager
def _naming_write_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        what = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise OSError(
            exc.errno,
            f"cannot write checkpoint {path.name} in {path.parent}: {what}; the previous checkpoint is intact",
            str(path),
        ) from exc


def _holder() -> str:
    return f"pid {os.getpid()} on host {socket.gethostname()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    """Copy with every core: the snapshot is the part of a checkpoint that training waits for."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _is_zero_optimizer(obj: object) -> bool:
    # torch.distributed.optim takes about a second to import; until something has imported it, no object can be
    # a ZeroRedundancyOptimizer, so the check never imports it.
    module = sys.modules.get("torch.distributed.optim.zero_redundancy_optimizer")
    return module is not None and isinstance(obj, module.ZeroRedundancyOptimizer)


def _unwrap(obj: Any) -> Any:
    return obj.module if isinstance(obj, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else obj


def _is_branch(obj: Any) -> bool:
    """A list, tuple or mapping of objects (pytorch-ignite's nested ``to_save``), not an object to save."""
    return isinstance(obj, (Mapping, list, tuple)) and not callable(getattr(obj, "state_dict", None))


def _leaves(obj: Any, where: str) -> Iterator[tuple[str, Any]]:
    """The objects of a (nested) ``to_save`` value, each with its place (``'models'[1]``)."""
    if isinstance(obj, Mapping) and _is_branch(obj):
        for key, value in obj.items():
            yield from _leaves(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)) and _is_branch(obj):
        for index, value in enumerate(obj):
            yield from _leaves(value, f"{where}[{index}]")
    else:
        yield where, obj


def _check_objects(objects: Mapping[str, Any], method: str) -> None:
    for key, value in objects.items():
        for where, obj in _leaves(value, repr(key)):
            if not callable(getattr(obj, method, None)):
                raise TypeError(
                    f"{where} ({type(obj).__name__}) has no {method}() method, so it cannot be checkpointed"
                )


def _state_of(obj: Any) -> Any:
    """``obj``'s state dict (a list or dict of them for a nested value), not copied (see snapshot_state)."""
    if isinstance(obj, Mapping) and _is_branch(obj):
        return {key: _state_of(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)) and _is_branch(obj):
        return [_state_of(value) for value in obj]
    return _unwrap(obj).state_dict()


def _pairs(obj: Any, state: Any, where: str) -> Iterator[tuple[Any, Any]]:
    """(object, its state) for each object of a (nested) ``to_load`` value; ValueError where shapes differ."""
    if isinstance(obj, Mapping) and _is_branch(obj):
        if not isinstance(state, Mapping):
            raise ValueError(f"{where} is a mapping but the checkpoint holds a {type(state).__name__} there")
        missing = [key for key in obj if key not in state]
        if missing:
            raise ValueError(f"the checkpoint's {where} lacks {missing} (it holds {sorted(map(str, state))})")
        for key, value in obj.items():
            yield from _pairs(value, state[key], f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)) and _is_branch(obj):
        if not isinstance(state, (list, tuple)) or len(state) != len(obj):
            held = f"{len(state)} items" if isinstance(state, (list, tuple)) else f"a {type(state).__name__}"
            raise ValueError(f"{where} holds {len(obj)} objects but the checkpoint holds {held} there")
        for index, value in enumerate(obj):
            yield from _pairs(value, state[index], f"{where}[{index}]")
    else:
        yield obj, state


class Checkpoint:
    """Save ``to_save``'s state when attached to an event; keep the ``n_saved`` best (or latest) checkpoints.

    File names, scores and retention follow pytorch-ignite 0.5.5: ``{prefix}_{name}_{step}.pt`` (``name`` is
    the single key of ``to_save``, or ``checkpoint``); with ``score_function`` the best ``n_saved`` by score
    are kept, as ``{prefix}_{name}_{score_name}={score}.pt``. A file holding one object holds its state dict
    itself; else a dict of state dicts by key. ``to_save`` may hold anything with ``state_dict()``: models,
    optimizers, LR schedulers, ``GradScaler``, the engine itself, other handlers, and
    :class:`~ignite_async.handlers.RNGStates`; and, as in pytorch-ignite, lists, tuples and dicts of them
    (``{"models": [generator, critic]}``), saved as lists and dicts of their state dicts.

    Its first firing on an engine registers :class:`CheckpointEvents` there; ``Checkpoint.SAVED_CHECKPOINT``
    fires once each checkpoint is durable and counted (from the write's background task: training may be
    further on, and ``engine.last_event_name`` is the loop's own). To attach handlers before that first firing,
    call ``engine.register_events(*CheckpointEvents)`` first.

    Unlike pytorch-ignite's, the handler does not block training while it writes (see the module docs), but
    where saves come faster than they are written: then it writes as a blocking save does, without a copy;
    the file holds exactly the state at the firing, and it counts (``last_checkpoint``, retention) only once
    it is durable. Given a directory that already holds files under this handler's names (a resumed run,
    ``require_empty=False``), it counts them in ``n_saved`` too, so old checkpoints do not pile up. Its names
    in its directory are its own while it lives (see :meth:`BaseSaveHandler.claim`); :meth:`close` gives
    them up.

    :param to_save: objects to save, by name.
    :param save_handler: a :class:`BaseSaveHandler` (e.g. :class:`DiskSaver`), a directory path, or a callable
        ``f(checkpoint, filename, metadata)`` (or ``f(checkpoint, filename)``), called in a worker thread and
        never asked to remove anything, as pytorch-ignite calls it.
    :param score_function: ``f(engine) -> number``; higher is better. Requires numbers.
    :param score_name: shown in file names; alone, it selects ``engine.state.metrics[score_name]``.
    :param n_saved: how many checkpoints to keep (None: all).
    :param global_step_transform: ``f(engine, event) -> int`` for the step in file names.
    :param include_self: also save this handler's own state (under ``"checkpointer"``).
    :param save_on_rank: in a distributed job, the rank that writes when ``save_handler`` is a path. A
        :class:`DiskSaver`'s own ``save_on_rank`` decides otherwise (as in pytorch-ignite); other save handlers
        are called on every rank. Ranks that do not write only keep the same list of saved names.
        DDP-wrapped models are saved unwrapped, and a ZeroRedundancyOptimizer is consolidated first.
    :raises TypeError: for a ``to_save`` object without ``state_dict``, bad handler types, or a callable
        ``save_handler`` that cannot take ``(checkpoint, filename)``.
    :raises ValueError: for ``n_saved < 1``.
    :raises CheckpointInUseError: if another live Checkpoint writes the same names in the same directory.

    >>> import asyncio, tempfile
    >>> from torch import nn
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import Checkpoint, DiskSaver
    >>> model = nn.Linear(2, 1)
    >>> trainer = Engine(lambda e, b: None)
    >>> directory = tempfile.mkdtemp()
    >>> checkpointer = Checkpoint({"model": model, "trainer": trainer}, DiskSaver(directory), n_saved=2)
    >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    >>> _ = asyncio.run(trainer.run([0, 1, 2], max_epochs=3))
    >>> sorted(path.name for path in checkpointer.save_handler.dirname.glob("*.pt"))
    ['checkpoint_6.pt', 'checkpoint_9.pt']
    """

    class Item(NamedTuple):
        priority: float
        filename: str

    #: Fired once a checkpoint is durable and ``last_checkpoint`` names it (see :class:`CheckpointEvents`).
    SAVED_CHECKPOINT = CheckpointEvents.SAVED_CHECKPOINT

    def __init__(
        self,
        to_save: Mapping[str, Any],
        save_handler: BaseSaveHandler | str | Path | Callable[..., Any],
        filename_prefix: str = "",
        score_function: Callable[[Engine], Any] | None = None,
        score_name: str | None = None,
        n_saved: int | None = 1,
        global_step_transform: Callable[[Engine, Any], int] | None = None,
        filename_pattern: str | None = None,
        include_self: bool = False,
        greater_or_equal: bool = False,
        save_on_rank: int = 0,
    ) -> None:
        if not isinstance(to_save, Mapping):
            raise TypeError(f"to_save must be a mapping of names to objects, got {type(to_save).__name__}")
        _check_objects(to_save, "state_dict")
        if include_self and "checkpointer" in to_save:
            raise ValueError("to_save cannot have a key 'checkpointer' with include_self=True")
        if include_self and len(to_save) == 1 and _is_branch(next(iter(to_save.values()))):
            raise TypeError(
                "include_self=True needs a dict to add 'checkpointer' to: a single to_save entry that is a list or "
                "dict of objects is saved as is; add another entry, or save the objects under keys of their own"
            )
        if isinstance(save_handler, (str, Path)):
            save_handler = DiskSaver(save_handler, create_dir=True, save_on_rank=save_on_rank)
        if not (isinstance(save_handler, BaseSaveHandler) or callable(save_handler)):
            raise TypeError(
                f"save_handler must be a BaseSaveHandler, a directory or a callable, got {type(save_handler).__name__}"
            )
        if score_function is not None and not callable(score_function):
            raise TypeError(f"score_function must be callable, got {score_function!r}")
        if global_step_transform is not None and not callable(global_step_transform):
            raise TypeError(f"global_step_transform must be callable, got {global_step_transform!r}")
        if n_saved is not None and (isinstance(n_saved, bool) or not isinstance(n_saved, int) or n_saved < 1):
            raise ValueError(f"n_saved must be an integer >= 1 or None, got {n_saved!r}")
        self.to_save = to_save
        self.save_handler = save_handler  # also checks a callable's signature
        self.save_on_rank = save_on_rank
        self.filename_prefix = filename_prefix
        self.score_name = score_name
        self.score_function = score_function
        if score_name is not None and score_function is None:
            self.score_function = self.get_default_score_fn(score_name)
        self.n_saved = n_saved
        self.global_step_transform = global_step_transform
        self.filename_pattern = filename_pattern
        self.include_self = include_self
        self.greater_or_equal = greater_or_equal
        self.ext = "pt"
        self._saved: list[Checkpoint.Item] = []  # durable checkpoints, by priority
        # One write in flight; a firing that finds it busy waits for it before it decides and snapshots.
        self._writer = BackgroundHandler(self._write_in_background, limit=1, when_busy="wait")
        # Writes (and the bookkeeping after them) one at a time, also when one was abandoned (see _threads).
        self._write_lock = threading.Lock()
        # Snapshots whose write is done, to copy the next snapshot into (see snapshot_state).
        self._spares: list[dict[str, Any]] = []
        self._writes_in_flight = 0  # background writes started and not finished
        self._last_write_s: float | None = None  # how long the last write took (seconds)
        self._resumed_at: float | None = None  # when training last went on after a firing (perf_counter)
        self._claimed: set[str] = set()  # basenames claimed, and whose existing files were counted
        if to_save:
            self._claim(self._basename(self._name()))

    @property
    def save_handler(self) -> BaseSaveHandler | Callable[..., Any]:
        """Where checkpoints go: the save handler or callable given."""
        return self._given_saver

    @save_handler.setter
    def save_handler(self, value: BaseSaveHandler | Callable[..., Any]) -> None:
        self._given_saver = value
        # What the write path calls: a BaseSaveHandler as is, a plain callable adapted to one.
        self._saver: BaseSaveHandler = value if isinstance(value, BaseSaveHandler) else _CallableSaver(value)

    # ------------------------------------------------------------------ deciding (pytorch-ignite's rules)

    @property
    def last_checkpoint(self) -> Path | str | None:
        """The newest kept checkpoint (a path for a DiskSaver), or None."""
        if not self._saved:
            return None
        name = self._saved[-1].filename
        return self._saver.dirname / name if isinstance(self._saver, DiskSaver) else name

    def reset(self) -> None:
        """Forget which checkpoints were saved (for independent runs of the same engine)."""
        self._saved = []

    def _room_left(self) -> bool:
        return self.n_saved is None or len(self._saved) < self.n_saved

    def _beats_worst(self, priority: float) -> bool:
        worst = self._saved[0].priority
        return priority >= worst if self.greater_or_equal else priority > worst

    def _priority(self, engine: Engine) -> tuple[float, int | None]:
        global_step = None
        if self.global_step_transform is not None:
            global_step = self.global_step_transform(engine, engine.last_event_name)
        if self.score_function is None:
            if global_step is None:
                global_step = engine.state.iteration
            return global_step, global_step
        score = self.score_function(engine)
        if hasattr(score, "item") and getattr(score, "ndim", 0) == 0:
            score = score.item()
        if isinstance(score, bool) or not isinstance(score, numbers.Number):
            raise TypeError(f"score_function {self.score_function!r} returned {score!r}: need a number")
        return score, global_step  # type: ignore[return-value]

    def _filename(self, name: str, priority: float, global_step: int | None) -> str:
        pattern = self.filename_pattern or self.setup_filename_pattern(
            with_prefix=bool(self.filename_prefix),
            with_score=self.score_function is not None,
            with_score_name=self.score_name is not None,
            with_global_step=global_step is not None,
        )
        score = None
        if self.score_function is not None:
            score = f"{priority}" if isinstance(priority, numbers.Integral) else f"{priority:.4f}"
        return pattern.format(
            filename_prefix=self.filename_prefix,
            ext=self.ext,
            name=name,
            score_name=self.score_name,
            score=score,
            global_step=global_step,
        )

    @staticmethod
    def setup_filename_pattern(
        with_prefix: bool = True, with_score: bool = True, with_score_name: bool = True, with_global_step: bool = True
    ) -> str:
        """The default file name pattern; with everything:
        ``{filename_prefix}_{name}_{global_step}_{score_name}={score}.{ext}``."""
        if not (with_global_step or with_score):
            raise ValueError("at least one of with_score and with_global_step must be True")
        if with_score_name and not with_score:
            raise ValueError("with_score_name needs with_score")
        pattern = "{name}"
        if with_global_step:
            pattern += "_{global_step}"
        if with_score:
            pattern += "_{score_name}={score}" if with_score_name else "_{score}"
        if with_prefix:
            pattern = "{filename_prefix}_" + pattern
        return pattern + ".{ext}"

    # ------------------------------------------------------------------ saving

    async def __call__(self, engine: Engine) -> None:
        if not engine.has_registered_events(CheckpointEvents.SAVED_CHECKPOINT):
            engine.register_events(*CheckpointEvents)
        inline = engine._task_group is None or engine._cancelling
        # Saves come faster than they are written: this firing finds the previous write in flight, or the last
        # write took longer than training ran since the last firing (so a background write now would be found
        # in flight by the next firing, having competed with training for the cores meanwhile).
        now = time.perf_counter()
        outpaced = not inline and (
            self._writes_in_flight > 0
            or (
                self._last_write_s is not None
                and self._resumed_at is not None
                and self._last_write_s > now - self._resumed_at
            )
        )
        if not inline and not await self._writer.wait_for_slot(engine):
            return  # a write failed: the run is failing
        priority, global_step = self._priority(engine)
        name = self._name()
        self._claim(self._basename(name))
        if not (self._room_left() or self._beats_worst(priority)):
            return
        writer = self._writer_rank()
        for key, value in self.to_save.items():
            for _, obj in _leaves(value, repr(key)):
                if _is_zero_optimizer(obj):  # a collective: every rank, in event order
                    obj.consolidate_state_dict(to=self.save_on_rank if writer is None else writer)
        filename = self._filename(name, priority, global_step)
        if writer is not None and get_rank() != writer:
            # Other ranks keep the same list of saved files (for last_checkpoint), without copying or writing,
            # and fire SAVED_CHECKPOINT as pytorch-ignite's do (handlers may hold collectives).
            self._saved, _ = self._plan(filename, priority)
            await _announce_saved(engine)
            return
        raw = {key: _state_of(obj) for key, obj in self.to_save.items()}
        # The training loop waits for a write that it cannot overlap with training anyway: one that found the
        # previous write still in flight (saves come faster than they are written), or one outside a run. A
        # snapshot copy would then be paid on top of the write, so it is written from the live state (CPU
        # tensors as they are) while the loop waits, as a blocking save is: never slower than one. CUDA
        # tensors are still copied, on a side stream (see snapshot_state). A save handler that keeps the
        # tensors it is given, or the last write of a cancelled run (which may be abandoned while still
        # reading), always gets a copy.
        live = (outpaced or engine._task_group is None) and not self._saver.keeps_references
        if live:
            snap = snapshot_state(raw, copy_cpu=False)
        else:
            spare = self._spares.pop() if self._spares else {}
            with _all_cores():
                snap = snapshot_state(raw, spare)
        metadata = {"basename": self._basename(name), "score_name": self.score_name, "priority": priority}
        job = (name, filename, priority, metadata, snap, not live)
        if inline or live:
            # Outside a run, a cancelled run's last checkpoint (within the cancellation's grace period: past
            # it, the write is abandoned and the run reports the failure), or written from the live state.
            try:
                if await run_sync(self._write, *job):
                    await _announce_saved(engine)
            finally:
                self._resumed_at = time.perf_counter()
        else:
            self._writes_in_flight += 1
            try:
                await self._writer.submit(engine, (engine, *job), {})
            except BaseException:
                self._writes_in_flight -= 1
                raise
            finally:
                self._resumed_at = time.perf_counter()

    def close(self) -> None:
        """Give up this handler's checkpoint names (see :meth:`BaseSaveHandler.claim`)."""
        close = getattr(self._saver, "close", None)
        if callable(close):
            close()
        self._claimed.clear()

    def _writer_rank(self) -> int | None:
        """The rank whose DiskSaver writes; None for other save handlers, called on every rank to decide."""
        return self._saver.save_on_rank if isinstance(self._saver, DiskSaver) else None

    def _name(self) -> str:
        return next(iter(self.to_save)) if len(self.to_save) == 1 else "checkpoint"

    def _basename(self, name: str) -> str:
        return f"{self.filename_prefix}_{name}" if self.filename_prefix else name

    def _claim(self, basename: str) -> None:
        """Take the names ``basename*``; the first time, count the files already stored under them."""
        if basename in self._claimed:
            return
        self._saver.claim(basename)
        self._claimed.add(basename)
        self._count_stored(basename)

    def _count_stored(self, basename: str) -> None:
        known = {item.filename for item in self._saved}
        found = [item for item in self._stored_items(basename) if item.filename not in known]
        if found:
            self._saved = sorted([*self._saved, *found], key=lambda item: item.priority)

    def _stored_items(self, basename: str) -> list[Checkpoint.Item]:
        """Files of the save handler that this handler's pattern could have named, with their priorities."""
        name = basename[len(self.filename_prefix) + 1 :] if self.filename_prefix else basename
        matchers = [self._filename_regex(name, with_step) for with_step in (True, False)]
        items = []
        for filename in self._saver.existing():
            for regex in matchers:
                match = regex.fullmatch(filename) if regex is not None else None
                if match is None:
                    continue
                fields = match.groupdict()
                if self.score_function is not None:
                    priority = _number(fields.get("score"))
                else:
                    priority = _number(fields.get("global_step"))
                if priority is not None:
                    items.append(Checkpoint.Item(priority, filename))
                break
        return items

    def _filename_regex(self, name: str, with_global_step: bool) -> re.Pattern[str] | None:
        if self.filename_pattern is None and not (with_global_step or self.score_function is not None):
            return None
        pattern = self.filename_pattern or self.setup_filename_pattern(
            with_prefix=bool(self.filename_prefix),
            with_score=self.score_function is not None,
            with_score_name=self.score_name is not None,
            with_global_step=with_global_step,
        )
        literals = {
            "filename_prefix": self.filename_prefix,
            "ext": self.ext,
            "name": name,
            "score_name": self.score_name,
        }
        groups = {"global_step": r"-?\d+", "score": r"[-+0-9.eEinfa]+"}
        regex, seen = "", set[str]()
        for text, field, _, _ in string.Formatter().parse(pattern):
            regex += re.escape(text)
            if field is None:
                continue
            if field in groups:
                regex += f"(?P<{field}>{groups[field]})" if field not in seen else f"(?P={field})"
                seen.add(field)
            else:
                regex += re.escape(str(literals.get(field, "")))
        return re.compile(regex)

    def _plan(self, filename: str, priority: float) -> tuple[list[Checkpoint.Item], list[str]]:
        """The saved list once ``filename`` is written, and the files it replaces (pytorch-ignite's rules,
        with files found from a previous run also pruned down to ``n_saved``)."""
        saved = [item for item in self._saved if item.filename != filename]
        stale = [item.filename for item in self._saved if item.filename == filename]
        if len(stale) == 0 and not (self.n_saved is None or len(saved) < self.n_saved):
            stale.append(saved.pop(0).filename)
        saved.append(Checkpoint.Item(priority, filename))
        saved.sort(key=lambda item: item.priority)
        while self.n_saved is not None and len(saved) > self.n_saved:
            stale.append(saved.pop(0).filename)
        return saved, stale

    async def _write_in_background(self, engine: Engine, *job: Any) -> None:
        try:
            if await run_sync(self._write, *job):
                await _announce_saved(engine)
        finally:
            self._writes_in_flight -= 1

    def _write(
        self,
        name: str,
        filename: str,
        priority: float,
        metadata: Mapping[str, Any],
        snap: StateSnapshot,
        reusable: bool,
    ) -> bool:
        # Runs in a worker thread. The new checkpoint is durable before it counts, and before any old one goes.
        # Returns whether it was written.
        started = time.perf_counter()
        states = snap.result()  # device copies finished: the buffers hold the state at the firing
        snapshot = states[name] if len(states) == 1 else states
        with self._write_lock:
            if not (self._room_left() or self._beats_worst(priority)):
                return False  # a write that finished meanwhile (one abandoned on cancellation) took its place
            saved, stale = self._plan(filename, priority)
            if self.include_self:  # the list as it will be, this file included, as pytorch-ignite saves it
                snapshot["checkpointer"] = OrderedDict([("_saved", [(p, f) for p, f in saved])])
            self._saver(snapshot, filename, metadata)
            self._last_write_s = time.perf_counter() - started
            self._saved = saved
            for old in stale:
                if old != filename:
                    self._saver.remove(old)
        if reusable and not self._saver.keeps_references and not self._spares:
            self._spares.append(states)  # written: its buffers can take the next snapshot
        return True

    # ------------------------------------------------------------------ loading

    @staticmethod
    def load_objects(
        to_load: Mapping[str, Any],
        checkpoint: str | Path | Mapping[str, Any],
        *,
        safe_globals: Iterable[Any] = (),
        **kwargs: Any,
    ) -> None:
        """Restore ``to_load``'s objects from a checkpoint file or dict, all or none.

        Every key is checked before anything is loaded, so a checkpoint that lacks one changes nothing.
        Files are read with torch's weights-only loader, which refuses to build objects of classes outside
        its allow-list (executing a file's code is what an untrusted checkpoint would do): a checkpoint that
        holds your own classes loads with ``safe_globals=[MyClass, ...]``. ``kwargs`` go to modules'
        ``load_state_dict`` (e.g. ``strict=False``).

        :raises ValueError: naming the file if it is truncated or corrupt, if it holds objects outside the
            allow-list (naming them), or the keys it lacks.
        :raises TypeError: for objects without ``load_state_dict``.
        """
        if not isinstance(checkpoint, (str, Path, Mapping)):
            raise TypeError(f"checkpoint must be a path or a mapping, got {type(checkpoint).__name__}")
        _check_objects(to_load, "load_state_dict")
        content = _read(Path(checkpoint), list(safe_globals)) if isinstance(checkpoint, (str, Path)) else checkpoint
        if not isinstance(content, (Mapping, list)):
            raise ValueError(f"checkpoint {checkpoint!r} holds a {type(content).__name__}, not a state dict")
        where = f"file {checkpoint}" if isinstance(checkpoint, (str, Path)) else "checkpoint"
        if len(to_load) == 1:
            ((key, obj),) = to_load.items()
            if not isinstance(content, Mapping) or key not in content:
                # A single entry's checkpoint is its state itself (a list of them for a list of objects).
                pairs = list(_pairs(obj, content, f"{where}: {key!r}"))
                for target, state in pairs:
                    _load_one(target, state, kwargs)
                return
        if not isinstance(content, Mapping):
            raise ValueError(f"{where} holds a {type(content).__name__}, not a dict of state dicts")
        missing = [key for key in to_load if key not in content]
        if missing:
            raise ValueError(f"{where} lacks {missing} (it holds {sorted(content)})")
        # Every object is matched to its state before any is loaded: a mismatch loads nothing.
        pairs = [pair for key, obj in to_load.items() for pair in _pairs(obj, content[key], f"{where}: {key!r}")]
        for target, state in pairs:
            _load_one(target, state, kwargs)

    def reload_objects(
        self, to_load: Mapping[str, Any], load_kwargs: Mapping[str, Any] | None = None, **filename_components: Any
    ) -> None:
        """Restore ``to_load`` from this handler's newest checkpoint, or from the one that ``filename_components``
        name, as :meth:`load_objects` does (all or none).

        The components are those of the file name pattern: ``global_step``, ``score`` and ``name`` (by
        default the name this handler saves under), as pytorch-ignite's; a numeric ``score`` is written as
        the handler writes it in file names (``0.5`` names ``..._0.5000.pt``). Without any, the file is
        :attr:`last_checkpoint` (pytorch-ignite needs components). It needs a :class:`DiskSaver`.

        :param load_kwargs: keyword arguments for :meth:`load_objects` (``strict=False``, ``safe_globals=...``).
        :raises AttributeError: if the save handler is not a DiskSaver (as pytorch-ignite).
        :raises TypeError: for a ``to_load`` that is not a mapping, an unknown filename component or a
            ``load_kwargs`` that is not a mapping.
        :raises ValueError: if nothing was saved yet and no component names a file.
        :raises FileNotFoundError: naming the file if the components name none.

        >>> import asyncio, tempfile
        >>> import torch
        >>> from ignite_async import Engine, Events
        >>> from ignite_async.handlers import Checkpoint
        >>> model = torch.nn.Linear(2, 1)
        >>> trainer = Engine(lambda e, b: None)
        >>> checkpointer = Checkpoint({"model": model}, tempfile.mkdtemp(), n_saved=None)
        >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
        >>> _ = asyncio.run(trainer.run([0, 1], max_epochs=2))
        >>> checkpointer.reload_objects({"model": model}, global_step=2)  # model_2.pt
        >>> checkpointer.reload_objects({"model": model})  # the newest: model_4.pt
        """
        if not isinstance(to_load, Mapping):
            raise TypeError(
                f"to_load must be a mapping of names to objects with load_state_dict (e.g. {{'model': model}}), "
                f"got {type(to_load).__name__}: the file is chosen by this Checkpoint or the filename components"
            )
        if not isinstance(self._saver, DiskSaver):
            raise AttributeError(
                f"reload_objects needs a DiskSaver as save_handler, this Checkpoint has a "
                f"{type(self.save_handler).__name__}: use Checkpoint.load_objects(to_load, checkpoint) instead"
            )
        unknown = sorted(set(filename_components) - {"global_step", "score", "name"})
        if unknown:
            raise TypeError(f"reload_objects got unknown filename components {unknown}: use global_step, score, name")
        if load_kwargs is not None and not isinstance(load_kwargs, Mapping):
            raise TypeError(f"load_kwargs must be a mapping of keyword arguments, got {type(load_kwargs).__name__}")
        if filename_components:
            global_step = filename_components.get("global_step")
            score = filename_components.get("score")
            if isinstance(score, numbers.Real) and not isinstance(score, bool):
                score = f"{score}" if isinstance(score, numbers.Integral) else f"{score:.4f}"
            pattern = self.filename_pattern or self.setup_filename_pattern(
                with_prefix=bool(self.filename_prefix),
                with_score=self.score_function is not None,
                with_score_name=self.score_name is not None,
                with_global_step=global_step is not None,
            )
            filename = pattern.format(
                filename_prefix=self.filename_prefix,
                ext=self.ext,
                name=filename_components.get("name", self._name() if self.to_save else "checkpoint"),
                score_name=self.score_name,
                score=score,
                global_step=global_step,
            )
            path = self._saver.dirname / filename
        else:
            newest = self.last_checkpoint
            if newest is None:
                raise ValueError(
                    "this Checkpoint has saved nothing yet: name the file with filename components "
                    "(global_step=..., score=..., name=...)"
                )
            path = Path(newest)
        self.load_objects(to_load, path, **dict(load_kwargs or {}))

    @staticmethod
    def get_default_score_fn(metric_name: str, score_sign: float = 1.0) -> Callable[[Engine], float]:
        """A score function reading ``engine.state.metrics[metric_name]``; ``score_sign=-1.0`` for losses.

        >>> from ignite_async import Engine
        >>> from ignite_async.handlers import Checkpoint
        >>> engine = Engine(lambda e, b: None)
        >>> engine.state.metrics["loss"] = 0.25
        >>> Checkpoint.get_default_score_fn("loss", score_sign=-1.0)(engine)
        -0.25
        """
        if score_sign not in (1.0, -1.0):
            raise ValueError(f"score_sign must be 1.0 or -1.0, got {score_sign!r}")

        def score(engine: Engine) -> float:
            if metric_name not in engine.state.metrics:
                raise KeyError(f"metric {metric_name!r} is not in engine.state.metrics {sorted(engine.state.metrics)}")
            return float(score_sign * engine.state.metrics[metric_name])

        return score

    def state_dict(self) -> OrderedDict[str, Any]:
        return OrderedDict([("_saved", [(p, f) for p, f in self._saved])])

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if "_saved" not in state_dict:
            raise ValueError("Checkpoint state_dict lacks '_saved'")
        self._saved = [Checkpoint.Item(p, f) for p, f in state_dict["_saved"]]
        for basename in self._claimed:  # files stored after the loaded checkpoint was written count too
            self._count_stored(basename)


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def _read(path: Path, safe_globals: list[Any]) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        with torch.serialization.safe_globals(safe_globals):
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        refused = _UNSUPPORTED_GLOBAL.findall(str(exc))
        if refused:
            raise ValueError(
                f"checkpoint file {path} holds {', '.join(dict.fromkeys(refused))}, outside torch's weights-only "
                "allow-list: it may come from an untrusted source, or hold classes of your own. If you trust it, "
                "allow those classes: Checkpoint.load_objects(..., safe_globals=[YourClass])"
            ) from None
        # torch's message for a refused file advises weights_only=False, which would run what the file holds.
        detail = str(exc).rpartition("WeightsUnpickler error:")[2].strip().splitlines()[0:1] or [repr(exc)]
        raise ValueError(f"checkpoint file {path} is truncated or corrupt: {detail[0]}") from None
    except Exception as exc:  # torch.load fails in many ways on a damaged file (EOFError, IndexError, ...)
        raise ValueError(f"checkpoint file {path} is truncated or corrupt: {exc!r}") from exc


def _load_one(obj: Any, state: Any, kwargs: Mapping[str, Any]) -> None:
    obj = _unwrap(obj)
    if isinstance(obj, nn.Module):
        obj.load_state_dict(state, **kwargs)
    else:
        obj.load_state_dict(state)


async def _announce_saved(engine: Engine) -> None:
    """Run ``SAVED_CHECKPOINT``'s handlers, leaving ``engine.last_event_name`` to the loop, which reads it (the
    write's background task may end while the loop is anywhere)."""
    handlers = engine._event_handlers.get(engine._registered_key(CheckpointEvents.SAVED_CHECKPOINT, "fire"))
    if handlers:
        await engine._call_handlers(handlers)


class ModelCheckpoint(Checkpoint):
    """A :class:`Checkpoint` to a directory, given its objects at attach time, as pytorch-ignite's.

    >>> import tempfile
    >>> from torch import nn
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import ModelCheckpoint
    >>> handler = ModelCheckpoint(tempfile.mkdtemp(), "mnist", n_saved=3)
    >>> trainer = Engine(lambda e, b: None)
    >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, handler, {"model": nn.Linear(2, 1)})
    """

    def __init__(
        self,
        dirname: str | Path,
        filename_prefix: str = "",
        score_function: Callable[[Engine], Any] | None = None,
        score_name: str | None = None,
        n_saved: int | None = 1,
        atomic: bool = True,
        require_empty: bool = True,
        create_dir: bool = True,
        global_step_transform: Callable[[Engine, Any], int] | None = None,
        filename_pattern: str | None = None,
        include_self: bool = False,
        greater_or_equal: bool = False,
        save_on_rank: int = 0,
        **torch_save_kwargs: Any,
    ) -> None:
        saver = DiskSaver(
            dirname,
            atomic=atomic,
            create_dir=create_dir,
            require_empty=require_empty,
            save_on_rank=save_on_rank,
            **torch_save_kwargs,
        )
        super().__init__(
            {},
            saver,
            filename_prefix=filename_prefix,
            score_function=score_function,
            score_name=score_name,
            n_saved=n_saved,
            global_step_transform=global_step_transform,
            filename_pattern=filename_pattern,
            include_self=include_self,
            greater_or_equal=greater_or_equal,
            save_on_rank=save_on_rank,
        )

    async def __call__(self, engine: Engine, to_save: Mapping[str, Any]) -> None:  # type: ignore[override]
        if not to_save:
            raise ValueError("ModelCheckpoint was given no objects to save")
        _check_objects(to_save, "state_dict")
        self.to_save = to_save
        await super().__call__(engine)
