"""Work that a cancellation must not cut off half-way, but may wait for only so long.

A batch fetched from a one-shot stream (an async generator) is lost if a cancellation lands inside the
fetch: the cancellation is raised inside the generator, which then ends. So such fetches run shielded.
A shield alone would let a stream that waits for data hold a cancelled run forever; a deadline set when the
fetch starts would cut off a slow but healthy fetch that no one cancelled. :class:`GraceScopes` gives the
shielded scopes a deadline only once a cancellation has arrived: ``grace`` seconds after it.

The engine learns of a cancellation that it cannot see (its loop may be inside a shield) from a watcher
task in its task group: cancelled together with the rest of the run, it calls :meth:`GraceScopes.start`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["GraceScopes"]


class GraceScopes:
    """Shielded cancel scopes that get ``grace`` seconds once :meth:`start` is called."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._deadline = math.inf

    @contextmanager
    def shielded(self) -> Iterator[anyio.CancelScope]:
        """A shielded scope: safe from cancellation until the grace period (if started) runs out."""
        scope = anyio.CancelScope(shield=True, deadline=self._deadline)
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    def start(self, grace: float) -> None:
        """A cancellation arrived: every shielded scope, now or later, ends within ``grace`` seconds."""
        self._deadline = min(self._deadline, anyio.current_time() + grace)
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, self._deadline)

    def reset(self) -> None:
        """A new run: no grace period is running."""
        self._deadline = math.inf

    async def watch(self, grace: float, own_scope: anyio.CancelScope) -> None:
        """Wait until cancelled; unless by ``own_scope`` (the run ended), start the grace period."""
        with own_scope:
            try:
                await anyio.sleep_forever()
            finally:
                if not own_scope.cancel_called:
                    self.start(grace)
