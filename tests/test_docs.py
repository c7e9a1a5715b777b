"""The documentation stays self-contained: relative links resolve, no file cites the notes on the method that live
outside the repository (docs/method.md holds what the code relies on), and docs/plugin.md names every --pl_*
option of the trainer."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", "exp", "dump", "data", "corpus", "__pycache__", ".pytest_cache", "node_modules"}
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
        "egs/synth_en/RESULTS.md", "egs/synth_en/EXPERIMENTS.md", "bench/RESULTS.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Built from pieces so that this file does not match itself.
OUTSIDE_NOTES = re.compile("method" + r"[- ]notes", re.IGNORECASE)


def text_files() -> list[Path]:
    """The repository's files that git does not ignore, or a walk that skips run outputs and the virtual environment."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
        files = [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if p.is_file()]
    return [p for p in files
            if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts[:-1])
            and p.suffix not in {".png", ".jpg", ".pth", ".gz", ".wav", ".flac"}]


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6} (.+)$", fenced, flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def strip_code(text: str) -> str:
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def test_no_reference_to_notes_outside_the_repository():
    hits = []
    for path in text_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        hits += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(text.splitlines(), 1)
                 if OUTSIDE_NOTES.search(line)]
    assert not hits, f"cite docs/method.md instead of notes outside the repository: {hits}"


def test_relative_links_resolve():
    broken = []
    for name in DOCS:
        doc = ROOT / name
        for target in LINK.findall(strip_code(doc.read_text())):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            if not dest.exists():
                broken.append(f"{name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{name}: {target} (no such section)")
    assert not broken, broken


def test_plugin_reference_names_every_pl_option():
    source = (ROOT / "softpl" / "train" / "options.py").read_text()
    code = set(re.findall(r"add_argument\(\s*\"(--pl_\w+)\"", source))
    assert code, "no --pl_* options found in softpl/train/options.py"
    table = set(re.findall(r"^\| `(--pl_\w+)` \|", (ROOT / "docs" / "plugin.md").read_text(), flags=re.M))
    assert code - table == set(), f"options missing from docs/plugin.md's option reference: {sorted(code - table)}"
    assert table - code == set(), f"docs/plugin.md lists options the code does not have: {sorted(table - code)}"
