"""Checkpoints of sharded models with ``torch.distributed.checkpoint`` (DCP), for models that do not fit one rank.

:class:`DCPSaver` is a save handler for :class:`~ignite_async.handlers.Checkpoint`: every rank writes its own
shards (FSDP2 ``fully_shard`` models, DTensor parameters, and their optimizer states) into one DCP checkpoint
directory per checkpoint, named as Checkpoint names its files (``model_2.pt`` is then a directory). Nothing is
gathered onto one rank. Checkpoint calls the handler on every rank, in a worker thread, so training goes on
while the shards are written; :meth:`DCPSaver.load_objects` restores the objects in place on every rank.

A checkpoint counts once DCP has written its ``.metadata`` (DCP writes it last, atomically, after every rank's
shards are written): a directory without it is an unfinished or half-removed checkpoint, and is never counted.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import shutil
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ignite_async.distributed.comm import get_rank, is_distributed
from ignite_async.handlers.checkpoint import BaseSaveHandler, DiskSaver

__all__ = ["DCPSaver"]

_METADATA = ".metadata"  # DCP's FileSystemWriter writes it last (to a temporary name, then renamed)
# Leaves that DCP stores as they are; anything else is serialized with torch.save, which must accept it.
_PLAIN = (int, float, complex, bool, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def _dcp() -> Any:
    try:
        import torch.distributed.checkpoint as dcp
    except ImportError as exc:  # pragma: no cover - torch built without distributed support
        raise ImportError(
            "DCPSaver needs torch.distributed.checkpoint, which this torch build lacks: install a torch build "
            "with distributed support (pip install torch)"
        ) from exc
    return dcp


def _leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{where}[{index}]")
    else:
        yield where, value


def _check_supported(checkpoint: Any, filename: str) -> None:
    """Raise TypeError naming the first value DCP cannot store (before any rank writes a byte of it)."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f"DCP saves a dict of state dicts, and checkpoint {filename!r} is a {type(checkpoint).__name__}: "
            "a single to_save entry that is a list of objects is saved as a list; save the objects under keys "
            "of their own"
        )
    for where, leaf in _leaves(checkpoint, "checkpoint"):
        if isinstance(leaf, torch.Tensor):
            if leaf.is_sparse or leaf.is_nested or leaf.device.type == "meta":
                raise TypeError(
                    f"{where} of {filename!r} is a {leaf.layout} tensor on {leaf.device}, which DCP cannot store: "
                    "save dense, materialized tensors"
                )
            continue
        if isinstance(leaf, _PLAIN):
            continue
        try:
            torch.save(leaf, io.BytesIO())
        except Exception as exc:
            raise TypeError(
                f"{where} of {filename!r} is a {type(leaf).__name__} ({leaf!r:.80}), which DCP cannot store: "
                f"torch.save refused it ({type(exc).__name__}: {exc}); keep only tensors and picklable values in "
                "state dicts"
            ) from exc


class DCPSaver(BaseSaveHandler):
    """Save handler writing each checkpoint as a ``torch.distributed.checkpoint`` directory in ``dirname``.

    Use it as ``Checkpoint(to_save, save_handler=DCPSaver(dirname), n_saved=...)``, on every rank, and
    restore with :meth:`load_objects`. Every rank writes its own shards; with ``use_async`` (and a torch that
    has ``dcp.async_save``) the save runs DCP's asynchronous path and the writer waits on its future (at most
    ``timeout`` seconds) before the checkpoint counts, so a checkpoint is counted only once every rank's
    shards and the metadata are written.

    Retention: ``remove`` runs on every rank, after that rank's save of the newer checkpoint returned, and DCP's
    save ends with a collective (rank 0 writes ``.metadata`` after gathering every rank's results, and every
    rank waits for it), so no rank still writes into the old directory. Rank 0 alone then deletes it (first its
    ``.metadata``, so that it stops counting at once and a crash half-way never leaves a directory that looks
    complete, then the rest), and a barrier on the handler's group follows, so that on no rank does ``remove``
    return before the directory is gone (a rank listing checkpoints then sees what rank 0 sees). This needs
    ``dirname`` on a file system that every rank sees, as DCP's loader does anyway (every rank reads the one
    ``.metadata``).

    The saves run in Checkpoint's worker thread while training may run collectives (FSDP's all-gathers) on the
    default group: collectives of two threads on one group could interleave differently on each rank. So in
    a distributed job the handler makes a gloo group of its own (``dist.new_group``, a collective: create the
    DCPSaver on every rank, in the same order) unless ``process_group`` is given; gloo, because the
    asynchronous save needs a CPU backend. DCP's own staging copy is skipped: what the handler is given is
    Checkpoint's snapshot already (each rank's shards, copied at the firing). In one process (no process group)
    the save is a plain ``dcp.save`` in Checkpoint's worker thread.

    :param dirname: the directory of the checkpoints; created (with parents) if ``create_dir``.
    :param create_dir: create ``dirname`` if missing.
    :param require_empty: refuse a directory that holds checkpoints already. With ``False`` (a resumed run), a
        Checkpoint counts those under its names in its ``n_saved``.
    :param use_async: save with ``dcp.async_save`` where torch has it (else ``dcp.save``).
    :param timeout: seconds a save (and the group's collectives) may take before it fails with TimeoutError.
    :param process_group: the group to save over; default a new gloo group of all ranks.
    :raises ValueError: if ``dirname`` is missing (and not ``create_dir``), or holds checkpoints while
        ``require_empty``, or for a ``timeout`` that is not positive.

    >>> import asyncio, tempfile
    >>> import torch
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import Checkpoint
    >>> from ignite_async.handlers.distributed_checkpoint import DCPSaver
    >>> model = torch.nn.Linear(2, 1)
    >>> trainer = Engine(lambda e, b: None)
    >>> directory = tempfile.mkdtemp()
    >>> saver = DCPSaver(directory)
    >>> checkpointer = Checkpoint({"model": model, "trainer": trainer}, saver, n_saved=1)
    >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    >>> _ = asyncio.run(trainer.run([0, 1], max_epochs=2))
    >>> saver.existing(), checkpointer.last_checkpoint
    (['checkpoint_4.pt'], 'checkpoint_4.pt')
    >>> DCPSaver.load_objects({"model": model, "trainer": trainer}, saver.dirname / checkpointer.last_checkpoint)
    >>> trainer.state.epoch
    2
    """

    def __init__(
        self,
        dirname: str | Path,
        *,
        create_dir: bool = True,
        require_empty: bool = True,
        use_async: bool = True,
        timeout: float = 1800.0,
        process_group: Any = None,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        dcp = _dcp()
        self.keeps_references = False  # the shards are written before __call__ returns, then let go
        self.dirname = Path(dirname).expanduser()
        self.timeout = float(timeout)
        self.use_async = bool(use_async) and hasattr(dcp, "async_save")
        if create_dir:
            self.dirname.mkdir(parents=True, exist_ok=True)  # every rank: exist_ok makes the race harmless
        elif not self.dirname.is_dir():
            raise ValueError(f"checkpoint directory {self.dirname} does not exist; pass create_dir=True to create it")
        if require_empty:
            present = self.existing()
            if present:
                raise ValueError(
                    f"checkpoint directory {self.dirname} already holds DCP checkpoints {present}; "
                    "pass require_empty=False to use it anyway (a resumed run)"
                )
        # Names are reserved as a DiskSaver reserves them (an flock on rank 0), so two trainers that share the
        # directory by mistake fail at once; it writes nothing else.
        self._names = DiskSaver(self.dirname, create_dir=False, require_empty=False)
        if process_group is None and is_distributed():
            process_group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=self.timeout))
        self.process_group = process_group

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``checkpoint`` (this rank's shards of it) as the DCP directory ``dirname/filename``.

        :raises TypeError: naming the first value that DCP cannot store, before anything is written.
        :raises TimeoutError: if the save takes longer than ``timeout``.
        :raises OSError: the original error (naming the file) where the ranks that failed could not write.
        :raises RuntimeError: naming the checkpoint and each failing rank's error, for other failures.
        """
        _check_supported(checkpoint, filename)
        dcp = _dcp()
        path = self.dirname / filename
        if get_rank() == 0:
            # Rewriting a checkpoint of the same name: it stops counting before its files are overwritten. The
            # others write nothing before rank 0 has joined the save's first collective, after this.
            (path / _METADATA).unlink(missing_ok=True)
        state = dict(checkpoint)
        alone = not is_distributed()  # said explicitly: DCP warns when it has to guess
        with _failures_named(path, "save"):
            if alone:
                with _single_process():
                    dcp.save(state, checkpoint_id=str(path), no_dist=True)
            elif self.use_async:
                result = dcp.async_save(
                    state, checkpoint_id=str(path), process_group=self.process_group, async_stager=_AlreadyStaged()
                )
                future: Future[Any] = getattr(result, "upload_completion", result)
                try:
                    future.result(timeout=self.timeout)
                except FutureTimeoutError:
                    raise TimeoutError(f"DCP save of {path} took more than {self.timeout} s") from None
            else:
                dcp.save(state, checkpoint_id=str(path), process_group=self.process_group)

    def remove(self, filename: str) -> None:
        """Delete the checkpoint directory ``filename``: rank 0 deletes it, then every rank waits for it.

        :raises OSError: on rank 0, naming the file it could not delete (the others return).
        """
        try:
            if get_rank() == 0:
                path = self.dirname / filename
                (path / _METADATA).unlink(missing_ok=True)  # first: it stops counting before it loses shards
                if path.exists():
                    shutil.rmtree(path)
        finally:
            # Every rank calls remove for the same names in the same order (Checkpoint's plan is the same on
            # every rank): once it returns, no rank lists (existing) or loads a checkpoint being deleted.
            if is_distributed():
                dist.barrier(group=self.process_group)

    def claim(self, basename: str) -> None:
        """Reserve the checkpoint names ``{basename}*`` in ``dirname`` as :meth:`DiskSaver.claim` does.

        :raises CheckpointInUseError: if another live Checkpoint writes them.
        """
        self._names.claim(basename)

    def close(self) -> None:
        """Give the names up (Checkpoint's ``close`` calls it)."""
        self._names.close()

    def existing(self) -> list[str]:
        """Names of the complete checkpoints in ``dirname`` (directories holding DCP's ``.metadata``)."""
        return sorted(p.name for p in self.dirname.iterdir() if (p / _METADATA).is_file())

    @staticmethod
    def load_objects(to_load: Mapping[str, Any], checkpoint_dir: str | Path, *, process_group: Any = None) -> None:
        """Restore ``to_load``'s objects in place from the DCP checkpoint ``checkpoint_dir``, on every rank.

        Each rank reads its own shards (a collective: call it on every rank, before the run). The layout is
        Checkpoint's: a dict of state dicts by key, or one object's state dict itself for a single entry.
        Optimizers whose state is still empty (created afresh) get it made first, by a step with zero
        gradients and a zero learning rate, so that DCP has tensors to load into; then every object's
        ``load_state_dict`` takes its loaded state. DCP plans the whole load before it reads anything, so a
        checkpoint that lacks a key changes nothing.

        :param to_load: objects with ``state_dict`` and ``load_state_dict``, by the names they were saved under.
        :param checkpoint_dir: a checkpoint directory, e.g. ``saver.dirname / checkpointer.last_checkpoint``
            (Checkpoint names only the directory's name for save handlers other than DiskSaver).
        :param process_group: the group to load over (default: the default group).
        :raises TypeError: for a ``to_load`` that is not a mapping, or objects without those methods.
        :raises FileNotFoundError: if ``checkpoint_dir`` holds no complete DCP checkpoint.
        :raises RuntimeError: naming the checkpoint and the keys it lacks (DCP's errors, by rank).
        :raises OSError: the original error where a rank cannot read its files.
        """
        if not isinstance(to_load, Mapping):
            raise TypeError(
                f"to_load must be a mapping of names to objects (e.g. {{'model': model}}), got {type(to_load).__name__}"
            )
        for key, obj in to_load.items():
            for method in ("state_dict", "load_state_dict"):
                if not callable(getattr(obj, method, None)):
                    raise TypeError(
                        f"to_load[{key!r}] ({type(obj).__name__}) has no {method}() method, so DCP cannot restore it"
                    )
        path = Path(checkpoint_dir)
        if not (path / _METADATA).is_file():
            raise FileNotFoundError(
                f"{path} is not a complete DCP checkpoint (no {_METADATA} in it): pass a directory that DCPSaver "
                "wrote, e.g. saver.dirname / checkpointer.last_checkpoint"
            )
        dcp = _dcp()
        for obj in to_load.values():
            if isinstance(obj, torch.optim.Optimizer):
                _make_optimizer_state(obj)
        states = {key: obj.state_dict() for key, obj in to_load.items()}
        if len(states) == 1:
            ((key, state),) = states.items()
            saved = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
            keyed = any(name == key or name.startswith(f"{key}.") for name in saved)
            target = states if keyed else state
        else:
            target = states
        with _failures_named(path, "load"):
            if is_distributed():
                dcp.load(target, checkpoint_id=str(path), process_group=process_group)
            else:
                with _single_process():
                    dcp.load(target, checkpoint_id=str(path), no_dist=True)
        for key, obj in to_load.items():
            obj.load_state_dict(states[key])


class _AlreadyStaged:
    """DCP's AsyncStager protocol, staging nothing: the state handed to the saver is Checkpoint's snapshot
    already, which training never touches, so DCP's default stager would only copy it a second time."""

    should_synchronize_after_execute = False

    def stage(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        return state_dict

    def synchronize_staging(self) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _failures_named(path: Path, action: str) -> Iterator[None]:
    """DCP's CheckpointException (a BaseException, which ``except Exception`` misses) as an ordinary error:
    the original OSError where every failing rank had one (it names the file), else a RuntimeError naming the
    checkpoint, the ranks and their errors."""
    try:
        yield
    except _dcp().api.CheckpointException as exc:
        errors = {rank: failure[0] if isinstance(failure, tuple) else failure for rank, failure in exc.failures.items()}
        if errors and all(isinstance(error, OSError) for error in errors.values()):
            raise next(iter(errors.values())) from exc
        said = "; ".join(f"rank {rank}: {type(error).__name__}: {error}" for rank, error in sorted(errors.items()))
        raise RuntimeError(f"DCP {action} of {path} failed ({said})") from exc


@contextlib.contextmanager
def _single_process() -> Iterator[None]:
    # DCP warns on every single-process save and load that it assumes a single process: that is the intent here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _make_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give a fresh optimizer its state tensors (a step with zero gradients and zero learning rate) so that
    DCP has tensors of the right shapes and shardings to load into; the parameters do not change."""
    if optimizer.state:
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    if any(p.grad is not None for p in params):
        return  # a step would use those gradients: leave the optimizer alone (its state loads as DCP finds it)
    rates = [group.get("lr") for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        if "lr" in group:
            group["lr"] = torch.tensor(0.0) if isinstance(group["lr"], torch.Tensor) else 0.0
    for p in params:
        p.grad = torch.zeros_like(p)
    try:
        optimizer.step()
    finally:
        for group, rate in zip(optimizer.param_groups, rates, strict=True):
            if rate is not None:
                group["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
