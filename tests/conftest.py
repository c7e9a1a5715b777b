"""Shared fixtures: the repository root and a throw-away copy of a recipe folder."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items):
    """The long end-to-end tests first: under ``pytest -n 2`` (make test) one worker starts the recipe smoke test at
    once while the other runs everything else, instead of starting it last."""
    items.sort(key=lambda item: (item.get_closest_marker("smoke") is None, "test_smoke_recipe" not in item.nodeid))


@pytest.fixture
def recipe_copy(tmp_path):
    """Make ``tmp_path/<name>`` a runnable copy of ``egs/<name>`` (local/ and conf/ linked, outputs in tmp)."""

    def make(name: str = "synth_en") -> Path:
        src = REPO / "egs" / name
        dst = tmp_path / name
        dst.mkdir()
        for script in src.glob("*.sh"):
            shutil.copy2(script, dst / script.name)
        for sub in ("local", "conf"):
            os.symlink(src / sub, dst / sub)
        return dst

    return make


def run_env() -> dict:
    """Environment for recipe subprocesses: the engine found through SOFTPL_ROOT, the venv first on PATH."""
    env = dict(os.environ)
    env["SOFTPL_ROOT"] = str(REPO)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    return env


def without_softpl(tmp_path: Path) -> dict:
    """Environment for a subprocess that cannot import softpl (a ``sitecustomize`` refuses it): what a user of
    stock ESPnet has. Proves that an exported model needs nothing of softpl."""
    site = tmp_path / "no_softpl"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n\n\nclass NoSoftpl:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'softpl':\n"
        "            raise ImportError('softpl may not be imported in this process')\n\n\n"
        "sys.meta_path.insert(0, NoSoftpl())\n")
    env = run_env()
    env["PYTHONPATH"] = str(site)
    return env
