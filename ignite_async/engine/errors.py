"""Exceptions the engine raises beyond the ones its users' code raises."""

from __future__ import annotations

__all__ = ["InterruptHandlerError"]


class InterruptHandlerError(Exception):
    """A run was stopped from outside (cancelled, or Ctrl-C) and an ``INTERRUPT`` handler failed, or did not
    finish within ``engine.cancel_grace_period``, while it saved the state: a final checkpoint may be missing.

    :meth:`Engine.run <ignite_async.Engine.run>` raises it in place of the cancellation (or
    ``KeyboardInterrupt``), which is its ``__context__``; the handler's error is :attr:`error` and its
    ``__cause__``. The state is rewound to the last completed iteration as after any cancellation, so the run
    can still be resumed from it, though not from a checkpoint that was not written.

    >>> import asyncio
    >>> import anyio
    >>> from ignite_async import Engine, Events, InterruptHandlerError
    >>> engine = Engine(lambda engine, batch: None)
    >>> @engine.on(Events.INTERRUPT)
    ... def save(engine):
    ...     raise OSError(28, "No space left on device")
    >>> async def main():
    ...     with anyio.move_on_after(0.05):
    ...         await engine.run(range(10**9))
    >>> try:
    ...     asyncio.run(main())
    ... except InterruptHandlerError as exc:
    ...     print(type(exc.error).__name__, exc.error.strerror)
    OSError No space left on device
    """

    def __init__(self, message: str, error: BaseException) -> None:
        super().__init__(message)
        #: What the INTERRUPT handler raised (a ``TimeoutError`` if the grace period ran out).
        self.error = error
