from __future__ import annotations

import types

import ignite_async


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name in dir(ignite_async)
        if not name.startswith("_") and not isinstance(getattr(ignite_async, name), types.ModuleType)
    } - {"annotations"}
    assert ignite_async.__all__ == sorted(ignite_async.__all__)
    assert set(ignite_async.__all__) - {"__version__"} == public


def test_names_fixed_by_the_spec_are_exported() -> None:
    from ignite_async import (  # noqa: F401
        Engine,
        EventEnum,
        Events,
        RemovableEventHandle,
        State,
        throttle_filter,
        timeout_filter,
    )
