"""Reads an offline W&B run back (the ``run-<id>.wandb`` file), for the tests: wandb 0.31 ships no reader.

The format, checked against files wandb 0.31 writes: ``b":W&B"``, 2 magic bytes, 1 version byte, then
records in LevelDB-log style 32 KiB blocks (the 7-byte file header counts in the first block). Each chunk
has a header ``crc(4) length(2) type(1)`` (little-endian; type 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST; the crc is
zlib's CRC-32 of the type byte and the data, not crc32c); a block's last < 7 bytes are zero padding. Each
record is a ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[pb.Record]:
    """Every record of the ``.wandb`` file at ``path``, checking each chunk's crc; AssertionError if damaged."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"not a W&B file: {data[:7]!r}"
    pos = _HEADER
    records: list[pb.Record] = []
    parts: list[bytes] | None = None
    while pos < len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # padding at the end of a block
            pos += left
            continue
        if len(data) - pos < _HEADER:
            assert not data[pos:].strip(b"\0"), "a truncated chunk header"
            break
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if crc == 0 and length == 0 and kind == 0:  # a zero-filled tail (preallocated)
            pos += left
            continue
        body = data[pos + _HEADER : pos + _HEADER + length]
        assert len(body) == length, f"a truncated chunk at {pos}"
        assert zlib.crc32(bytes([kind]) + body) == crc, f"a bad crc at {pos}"
        pos += _HEADER + length
        if kind == _FULL:
            assert parts is None, f"a FULL chunk inside a record at {pos}"
            chunks = [body]
        elif kind == _FIRST:
            parts = [body]
            continue
        elif kind == _MIDDLE:
            assert parts is not None
            parts.append(body)
            continue
        elif kind == _LAST:
            assert parts is not None
            chunks, parts = [*parts, body], None
        else:
            raise AssertionError(f"an unknown chunk type {kind} at {pos}")
        record = pb.Record()
        record.ParseFromString(b"".join(chunks))
        records.append(record)
    assert parts is None, "the file ends inside a record"
    return records


def _item_value(item: Any) -> Any:
    if item.value_json:
        return json.loads(item.value_json)
    kind = item.WhichOneof("value")
    return getattr(item, kind) if kind else None


def _key(item: Any) -> list[str]:
    """The item's key path: W&B splits a dict value (a histogram, ...) into one item per leaf."""
    return list(item.nested_key) if item.nested_key else [item.key]


def _put(into: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        into = into.setdefault(part, {})
    into[path[-1]] = value


@dataclass
class OfflineRun:
    """What the offline run holds: ``history`` (step -> {key: value}, W&B's own ``_``-keys left out),
    ``config`` (key -> value, W&B's ``_wandb`` left out), ``exit_code`` (None if the run was not finished)."""

    history: dict[int, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    rows: int = 0  # history records (W&B rows)


def read_run(run_dir: Path) -> OfflineRun:
    """The offline run in ``run_dir`` (the ``offline-run-...`` directory), read back from its ``.wandb`` file."""
    (path,) = run_dir.glob("run-*.wandb")
    out = OfflineRun()
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row: dict[str, Any] = {}
            for i in record.history.item:
                _put(row, _key(i), _item_value(i))
            step = int(row.get("_step", record.history.step.num))
            out.history.setdefault(step, {}).update({k: v for k, v in row.items() if not k.startswith("_")})
            out.rows += 1
        elif kind in ("run", "config"):  # the config given to wandb.init is in the run record
            config = record.run.config if kind == "run" else record.config
            for item in config.update:
                if _key(item) != ["_wandb"]:
                    _put(out.config, _key(item), json.loads(item.value_json))
            for item in config.remove:
                out.config.pop(_key(item)[0], None)
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
    return out


def run_dirs(root: Path) -> list[Path]:
    """The offline run directories under ``root`` (wandb's ``dir``), oldest first."""
    return sorted((root / "wandb").glob("offline-run-*"))


def settle(timeout: float = 30.0) -> None:
    """Shut wandb's service process down and wait for it (at most ``timeout`` s): ``Run.finish`` returns
    before the service has closed the run's ``.wandb`` file, and its exit is the only completion to wait on.
    In a thread: wandb's synchronous calls must not run on an asyncio event loop's thread."""
    import threading

    import wandb

    thread = threading.Thread(target=wandb.teardown, name="wandb-teardown")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"wandb's service did not shut down within {timeout} s"
