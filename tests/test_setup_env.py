"""utils/setup_env.sh's system-tool check: each recipe's local/system_tools, apt-get only when asked.

The script runs with a PATH of fakes (tools, apt-get, sudo) and --venv false, so nothing is installed and no
.venv is touched.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP_ENV = REPO / "utils" / "setup_env.sh"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A PATH folder with the few real programs the check uses, a logging apt-get and a pass-through sudo."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("bash", "dirname", "id", "env", "true"):
        os.symlink(shutil.which(program), bin_dir / program)
    log = tmp_path / "apt-get.log"
    # The fake apt-get "installs" a package by making a fake of the program named like it.
    write_script(bin_dir / "apt-get", f'echo "$*" >> {log}\n'
                 f'for p in "$@"; do case $p in -*|update|install) ;; *) printf "#!/bin/sh\\n" > {bin_dir}/$p; '
                 f'{shutil.which("chmod")} +x {bin_dir}/$p ;; esac; done\n')
    write_script(bin_dir / "sudo", '[ "$1" = -n ] && shift\nexec "$@"\n')  # sudo -n: no password needed
    return bin_dir


def write_script(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def setup_env(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent)}
    return subprocess.run([str(SETUP_ENV), "--venv", "false", *args], env=env, capture_output=True, text=True,
                          timeout=60)


RECIPES = sorted(d.name for d in (REPO / "egs").iterdir() if (d / "local" / "data.sh").exists())


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_declares_tools_the_check_can_install(fake_bin, recipe):
    """Each recipe's local/system_tools names tools the check knows (a Debian package each), and with none of them
    present, --install_system_packages true installs the missing ones (the fake apt-get; tools found at fixed
    paths on this machine count as present) and the check then passes; every recipe scores with sclite (stages
    7, 9), so every one declares it."""
    declared = (REPO / "egs" / recipe / "local" / "system_tools").read_text()
    assert "sclite" in [word for line in declared.splitlines() for word in line.split("#")[0].split()]
    proc = setup_env(fake_bin, "--recipes", str(REPO / "egs" / recipe), "--install_system_packages", "true")
    assert proc.returncode == 0, proc.stderr  # an unknown tool, or one apt-get did not provide, would stop it


def test_missing_tool_stops_with_the_apt_get_command_and_runs_no_apt_get(fake_bin):
    write_script(fake_bin / "flite", "")
    write_script(fake_bin / "sclite", "")
    proc = setup_env(fake_bin, "--recipes", str(REPO / "egs" / "synth_en"), "--install_system_packages", "false")
    assert proc.returncode != 0
    assert "missing system tool: espeak-ng (Debian package espeak-ng; needed by egs/synth_en)" in proc.stderr
    assert "apt-get update && " in proc.stderr and "apt-get install -y espeak-ng" in proc.stderr
    assert "--install_system_packages true" in proc.stderr
    assert "flite" not in proc.stderr.split("apt-get install -y")[1].split("\n")[0]  # present: not installed
    assert not (fake_bin.parent / "apt-get.log").exists()


def test_a_recipe_checks_only_its_own_tools(fake_bin):
    write_script(fake_bin / "sclite", "")  # no espeak-ng, flite: the LibriSpeech recipes do not need them
    for recipe in ("librispeech_100", "librilight_10h", "TEMPLATE"):
        proc = setup_env(fake_bin, "--recipes", str(REPO / "egs" / recipe))
        assert proc.returncode == 0, proc.stderr
    proc = setup_env(fake_bin, "--recipes", "", "--tools", "shellcheck", "--install_system_packages", "false")
    assert proc.returncode != 0 and "apt-get install -y shellcheck" in proc.stderr
    proc = setup_env(fake_bin, "--recipes", "", "--tools", "no-such-tool")
    assert proc.returncode != 0 and "unknown system tool 'no-such-tool'" in proc.stderr


def test_install_flag_runs_apt_get_for_the_missing_packages_only(fake_bin):
    write_script(fake_bin / "sclite", "")
    proc = setup_env(fake_bin, "--recipes", str(REPO / "egs" / "librispeech_100"), "--tools", "shellcheck flite",
                     "--install_system_packages", "true")
    assert proc.returncode == 0, proc.stderr
    calls = (fake_bin.parent / "apt-get.log").read_text().splitlines()
    assert calls == ["update -qq", "install -y -qq shellcheck flite"]
    assert (fake_bin / "shellcheck").exists()


@pytest.mark.parametrize("who", ["root", "passwordless sudo", "sudo asking for a password"])
def test_auto_installs_where_no_password_is_needed_and_otherwise_stops_with_the_command(fake_bin, who):
    """The default (auto): as root, or where `sudo -n` works, apt-get runs and says what it installs; where sudo
    would ask for a password, nothing is run and the command is printed."""
    if who != "root":
        (fake_bin / "id").unlink()  # the real id, linked by the fixture: we may well be root
        write_script(fake_bin / "id", 'echo 1000\n')
    if who == "sudo asking for a password":
        write_script(fake_bin / "sudo", '[ "$1" = -n ] && { echo "sudo: a password is required" >&2; exit 1; }\n'
                                        'exec "$@"\n')
    write_script(fake_bin / "sclite", "")
    proc = setup_env(fake_bin, "--recipes", str(REPO / "egs" / "librispeech_100"), "--tools", "shellcheck")
    log = fake_bin.parent / "apt-get.log"
    if who == "sudo asking for a password":
        assert proc.returncode != 0 and "sudo apt-get install -y shellcheck" in proc.stderr
        assert not log.exists()
    else:
        assert proc.returncode == 0, proc.stderr
        assert log.read_text().splitlines() == ["update -qq", "install -y -qq shellcheck"]
        through = " through sudo" if who != "root" else ""
        assert f"installing the missing system tools shellcheck: Debian packages shellcheck (apt-get{through};" \
            in proc.stderr
