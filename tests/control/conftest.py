import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ctl_helpers import HERE, _env  # noqa: E402


@pytest.fixture
def sockdir():
    """A directory any user may traverse (pytest's tmp dirs are 0700 root)."""
    d = tempfile.mkdtemp(prefix="cs-ctl-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sockdir):
    """Start fake daemons: fake(view=..., group=..., mode=..., move_script=...) -> (socket, log)."""
    procs = []

    def start(view="healthy", group="hasupd", mode="0660", move_script=None, name="hasupd.sock"):
        sock = os.path.join(sockdir, name)
        log = os.path.join(sockdir, name + ".log")
        argv = [sys.executable, os.path.join(HERE, "fake_daemon.py"), "--socket", sock, "--group", group,
                "--mode", mode, "--view", view, "--log", log]
        if move_script:
            argv += ["--move-script", move_script]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
        procs.append(p)
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read()
        return sock, log

    try:
        yield start
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


