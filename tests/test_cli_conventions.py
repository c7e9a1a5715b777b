"""Every entry point in softpl/bin follows one CLI convention, as ESPnet's tools do: an output folder is
``--output_dir``, an input data dir ``--data_dir``, and a boolean is a ``type=str2bool`` option with a default
(``--sclite false``), never a ``store_true`` switch (``--no_sclite``)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[1] / "softpl" / "bin"
RETIRED = {"--out_dir": "--output_dir", "--src": "--data_dir", "--dst": "--output_dir"}


def add_argument_calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"]


@pytest.mark.parametrize("path", sorted(BIN.glob("*.py")), ids=lambda p: p.name)
def test_bin_flags_follow_one_convention(path):
    for call in add_argument_calls(path):
        flags = [arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        keywords = {kw.arg: kw.value for kw in call.keywords}
        where = f"{path.name}:{call.lineno} {flags}"
        for flag in flags:
            assert flag not in RETIRED, f"{where}: name it {RETIRED[flag]}"
        action = keywords.get("action")
        assert not (isinstance(action, ast.Constant) and action.value in ("store_true", "store_false")), \
            f"{where}: make it type=str2bool with a default, named positively"
        if isinstance(keywords.get("type"), ast.Name) and keywords["type"].id == "str2bool":
            assert "default" in keywords, f"{where}: a str2bool option needs a default"


def test_the_check_sees_the_entry_points():
    assert len(add_argument_calls(BIN / "score.py")) >= 5
