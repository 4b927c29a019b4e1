"""Every kept failing input of every fuzz target is decided again, on every run: a bug a
fuzzer once found stays found."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.fuzzing import REGRESSIONS, TARGETS, regressions


def load_targets() -> None:
    """Import every fuzzing test module, which registers its targets."""
    for path in sorted(Path(__file__).parent.glob("test_fuzz*.py")):
        importlib.import_module(f"tests.{path.stem}")


load_targets()
CASES = [
    pytest.param(name, data, id=f"{name}-{i}")
    for name in sorted(TARGETS)
    for i, data in enumerate(regressions(name))
]


def test_every_regression_folder_names_a_registered_target() -> None:
    """A kept input whose target was renamed away would silently stop running."""
    folders = {p.name for p in REGRESSIONS.iterdir() if p.is_dir()} if REGRESSIONS.is_dir() else set()
    assert folders <= set(TARGETS), f"regressions without a target: {sorted(folders - set(TARGETS))}"


@pytest.mark.parametrize(("name", "data"), CASES)
def test_kept_failing_input_is_decided(name: str, data: bytes) -> None:
    TARGETS[name].run(data)


def test_every_target_decides_its_own_seeds() -> None:
    """The honest starting points of the byte-level fuzzer pass through every target."""
    assert TARGETS, "no fuzz target registered"
    for target in TARGETS.values():
        for seed in target.seeds():
            target.run(seed)
