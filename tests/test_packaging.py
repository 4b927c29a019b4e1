"""Installing jointbus puts one top-level package into site-packages: ``jointbus``.

The folders ``schemas/``, ``streams/``, ``agents/`` and ``audit/`` live at the repository's
top level, but PyPI has unrelated packages named ``schemas``, ``agents`` and ``audit``: an
install that put them at the top level would shadow (or be shadowed by) those.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_install_puts_only_the_jointbus_namespace_into_site_packages(tmp_path: Path) -> None:
    """A real ``pip install .`` (no dependencies, this environment's setuptools) into an empty
    target: the only package is ``jointbus``, and it carries the four folders and their data."""
    target = tmp_path / "site-packages"
    source = tmp_path / "source"  # a copy: the build leaves build/ and *.egg-info behind
    skip = shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "tests", "bench", "node_modules"
    )
    shutil.copytree(ROOT, source, symlinks=True, ignore=skip)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--target", str(target), str(source)],
        check=True,
        timeout=240,
        cwd=tmp_path,
    )
    top = {p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info"))}
    assert top - {"bin"} == {"jointbus"}, f"unexpected top-level entries: {sorted(top)}"
    package = target / "jointbus"
    for sub in ("schemas", "streams", "agents", "audit"):
        assert (package / sub / "__init__.py").is_file(), f"jointbus.{sub} missing"
        assert not (package / sub).is_symlink(), f"jointbus.{sub} installed as a link"
    assert (package / "streams" / "kafka" / "pom.xml").is_file()
    assert list((package / "schemas" / "json").glob("*.schema.json"))
    console = package / "console"  # the console's pages, style, script and (fetched) charting library
    assert (console / "templates" / "overview.html").is_file()
    assert (console / "static" / "console.js").is_file()
    assert (console / "static" / "vendor" / "echarts.min.js").is_file(), "run `make charts` before building"
    probe = "import jointbus.schemas.ledger, jointbus.agents.routing; print(jointbus.schemas.ledger.__file__)"
    where = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(target)), where


def test_public_api_names_resolve() -> None:
    """Every name a package promises in ``__all__`` exists (a stale export fails here)."""
    import importlib

    for name in ("jointbus.schemas", "jointbus.streams", "jointbus.audit"):
        module = importlib.import_module(name)
        assert module.__all__, name
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names missing attributes: {missing}"
