"""Helpers for the control tests (imported by path: the suite has several conftest.py)."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NOBODY = 65534


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASUPD_")}
    env.update(TZ="UTC", PYTHONPATH=ROOT, NO_COLOR="1", **extra)
    return env


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def hasupctl(*args, user=None, extra_groups=None, stdin=None, timeout=60, **env):
    """Run the real hasupctl (python -m hasupd.control.cli).

    As another USER it runs in a forked child that drops to that uid (the
    venv's interpreter lives under /root, which other users cannot reach).
    """
    if user is not None:
        return _as_user(user, extra_groups or [], list(args), env)
    return subprocess.run([sys.executable, "-m", "hasupd.control.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(**env), cwd="/", stdin=stdin if stdin is not None else
                          subprocess.DEVNULL)


def _as_user(uid, groups, argv, env):
    from hasupd.control.cli import main

    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, run main(), exit with its code
        code = 99
        try:
            os.setgroups(groups)
            os.setgid(uid)
            os.setuid(uid)
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            os.environ.clear()
            os.environ.update(_env(**env))
            time.tzset()
            code = main(argv)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(w_out)
    os.close(w_err)
    with os.fdopen(r_out) as f:
        out = f.read()
    with os.fdopen(r_err) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return Ran(os.waitstatus_to_exitcode(status), out, err)


def read_log(path):
    import json

    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.05)
