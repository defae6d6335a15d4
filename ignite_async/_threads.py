"""Blocking calls from the event loop that can never hold a cancellation back for long.

``anyio.to_thread.run_sync`` either waits for its thread however long it takes (the default: a sink that
hangs holds a cancelled run, and Ctrl-C, forever) or abandons it at once (``abandon_on_cancel``: a checkpoint
write in flight is no longer waited for, even when it would finish in a moment). :func:`run_sync` is in
between: cancelled, it waits up to ``grace`` seconds for the call to return, then abandons it. Its thread is
a daemon thread, so an abandoned call never keeps the process alive at exit either (anyio's worker threads
do); it goes on until it returns, or until the process exits.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["run_sync"]

T = TypeVar("T")

logger = logging.getLogger("ignite_async")


def _call_soon_on_loop() -> Callable[[Callable[[], object]], None]:
    """A thread-safe, non-blocking "run this on the current event loop soon" (asyncio or trio)."""
    native: Any = anyio.lowlevel.current_token().native_token
    if hasattr(native, "call_soon_threadsafe"):  # an asyncio event loop
        return native.call_soon_threadsafe  # type: ignore[no-any-return]
    return native.run_sync_soon  # type: ignore[no-any-return]  # a trio.lowlevel.TrioToken


async def run_sync(fn: Callable[..., T], *args: Any, grace: float = 0.0, name: str | None = None) -> T:
    """Call ``fn(*args)`` in a daemon thread of its own and return its result (or raise its exception).

    If the calling task is cancelled meanwhile, wait (shielded) up to ``grace`` seconds for the call to
    return, then let the cancellation propagate; a call still running is abandoned. The thread sees the
    caller's context variables.
    """
    outcome: list[tuple[bool, Any]] = []
    done = anyio.Event()
    call_soon = _call_soon_on_loop()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            outcome.append((True, context.run(fn, *args)))
        except BaseException as exc:  # handed back to the caller, which raises it
            outcome.append((False, exc))
        with contextlib.suppress(Exception):  # the event loop has finished: nobody waits for this call now
            call_soon(done.set)

    thread = threading.Thread(target=work, name=name or f"ignite_async-{getattr(fn, '__name__', 'call')}", daemon=True)
    thread.start()
    try:
        await done.wait()
    except anyio.get_cancelled_exc_class():
        with anyio.move_on_after(grace, shield=True):
            await done.wait()
        if not outcome:
            logger.warning(
                "%s did not return within %.3g s of the cancellation: abandoned, still running", thread.name, grace
            )
        elif not outcome[0][0]:
            logger.warning("%s failed after the cancellation: %r", thread.name, outcome[0][1])
        raise
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
