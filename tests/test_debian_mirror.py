"""scripts/debian-mirror: the mirror debootstrap takes (the packaging chroots, the VM
image, scripts/fresh-machine) from whichever form the machine's apt sources are in.
A Debian 12 installed from the installer has only /etc/apt/sources.list; the scripts
read only debian.sources under `set -o pipefail` and died with exit 2, no message."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "debian-mirror"


def mirror(apt: Path) -> str:
    return subprocess.run([str(SCRIPT), str(apt)], capture_output=True, text=True, check=True).stdout.strip()


def test_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n")
    assert mirror(tmp_path) == "http://mirror.example/debian"


def test_classic_sources_list_only(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# a comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://classic.example/debian bookworm main\n")
    assert mirror(tmp_path) == "http://classic.example/debian"


def test_no_sources_at_all(tmp_path):
    assert mirror(tmp_path) == "http://deb.debian.org/debian"


def test_the_scripts_that_debootstrap_ask_it():
    root = SCRIPT.parents[1]
    for script in ("tests/packaging/debian-chroot.sh", "tests/vm/build-image.sh", "scripts/fresh-machine"):
        text = (root / script).read_text()
        assert "scripts/debian-mirror" in text and "debian.sources" not in text.split("debian-mirror")[0], script
