"""Adapting user callables once, at registration, so that firing does no inspection.

A registered handler becomes a :data:`Entry` tuple. Everything the hot loop needs (the callable, its
bound arguments, whether to await it, its filter and the state attribute the filter reads) is resolved
here; firing only unpacks the tuple.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["Entry", "HandlerInfo", "check_callable_signature", "describe", "is_async_callable"]


def is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions, partials of them and objects whose ``__call__`` is ``async def``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (
        callable(fn) and inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    )


def describe(fn: object) -> str:
    """A short name for error messages: ``module.qualname`` where there is one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


def _binds(sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    if sig is None:
        return True
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def check_callable_signature(
    fn: Callable[..., Any], role: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """Raise ``TypeError`` naming ``fn`` unless it can be called with ``args`` and ``kwargs``."""
    if not callable(fn):
        raise TypeError(f"{role} must be callable, got {fn!r} of type {type(fn).__name__}")
    sig = _signature(fn)
    if not _binds(sig, args, kwargs):
        shown = ", ".join([*map(str, args), *(f"{k}=..." for k in kwargs)])
        raise TypeError(f"{role} {describe(fn)}{sig} cannot be called as {describe(fn)}({shown})")


class HandlerInfo(NamedTuple):
    """What firing needs beyond the fast path: the user's handler and how to call it with event arguments."""

    handler: Callable[..., Any]
    passes_engine: bool
    takes_event_args: bool
    args: tuple[Any, ...]
    accepted_event_kwargs: frozenset[str]


# (callable, positional args incl. the engine if it takes it, kwargs, is_async, filter, filter's state attr, info)
Entry = tuple[
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
    bool,
    "Callable[[Any, int], bool] | None",
    "str | None",
    HandlerInfo,
]


def make_entry(
    engine: object,
    handler: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    event_args: tuple[Any, ...],
    event_kwargs: Mapping[str, Any],
    event_filter: Callable[[Any, int], bool] | None,
    filter_attr: str | None,
    event_name: str,
) -> Entry:
    """Resolve, once, whether ``handler`` takes the engine, and how firing calls it.

    A handler is called as ``handler(engine, *event_args, *args, **kwargs)`` when its signature allows, as in
    pytorch-ignite. Otherwise the engine comes first still, without the event's arguments: an
    ``EXCEPTION_RAISED`` handler ``h(engine)`` (a ``Checkpoint``) gets the engine, where pytorch-ignite passes
    it the exception. Only a handler that cannot take the engine is called without it
    (``handler(*event_args, *args)``, else ``handler(*args)``). ``event_kwargs`` (e.g. ``iter_counter`` for
    ``TERMINATE_SINGLE_EPOCH``) are passed only to handlers that accept them.
    """
    if not callable(handler):
        raise TypeError(f"handler for {event_name} must be callable, got {handler!r}")
    sig = _signature(handler)
    forms = (
        [(True, True), (True, False), (False, True), (False, False)] if event_args else [(True, True), (False, True)]
    )
    fits = [
        (passes_engine, takes_event_args)
        for passes_engine, takes_event_args in forms
        for extra in ({}, event_kwargs)
        if _binds(
            sig,
            ((engine,) if passes_engine else ()) + (event_args if takes_event_args else ()) + args,
            {**kwargs, **extra},
        )
    ]
    if not fits:
        shown = ", ".join(["engine", *(["<event args>"] if event_args else []), *map(repr, args)])
        shown += "".join(f", {k}={v!r}" for k, v in kwargs.items())
        raise TypeError(
            f"handler {describe(handler)}{sig} for {event_name} cannot be called as "
            f"{describe(handler)}({shown}) nor without the engine"
        )
    passes_engine, takes_event_args = fits[0]
    head = ((engine,) if passes_engine else ()) + (event_args if takes_event_args else ()) + args
    accepted = frozenset(k for k, v in event_kwargs.items() if _binds(sig, head, {**kwargs, k: v}))
    call_args = (engine, *args) if passes_engine else args
    info = HandlerInfo(handler, passes_engine, takes_event_args, args, accepted)
    return (handler, call_args, kwargs, is_async_callable(handler), event_filter, filter_attr, info)
