from __future__ import annotations

import subprocess
import sys
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


def test_importing_the_package_does_not_import_heavy_optional_modules() -> None:
    # torch.distributed.optim alone costs about a second; it is imported only by users who need it.
    heavy = ["torch.distributed.optim", "torch.distributed.fsdp", "torch.utils.tensorboard", "tensorboard", "fastapi"]
    probe = (
        "import sys, ignite_async, ignite_async.handlers, ignite_async.metrics, ignite_async.loggers; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
