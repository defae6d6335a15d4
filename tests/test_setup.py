"""The package and its set-up follow the conventions a new user expects: licence, extras, make targets."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_licence_file_is_the_one_pyproject_declares() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "BSD-3-Clause"}
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")


def test_every_extra_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    extras = set(PYPROJECT["project"]["optional-dependencies"]) - {"dev"}
    assert {"trio", "tensorboard"} <= extras
    for extra in extras:
        assert f"ignite-async[{extra}]" in readme, f"the README does not say how to install the {extra!r} extra"


def _make_dry_run(target: str, tmp_path: Path) -> str:
    # -n prints what the target would run, against a venv that does not exist, so every install step shows.
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_make_demo_installs_only_what_the_demo_needs_and_says_so(tmp_path: Path) -> None:
    demo = _make_dry_run("demo", tmp_path)
    assert re.search(r"pip install --quiet -e \.$", demo, re.MULTILINE)
    assert ".[dev]" not in demo
    assert 'echo "==> ' in demo
    assert ".[dev]" in _make_dry_run("test", tmp_path)


def test_the_declared_python_floor_is_the_one_the_tools_check() -> None:
    floor = PYPROJECT["project"]["requires-python"]
    assert floor == ">=3.11"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == "3.11"
