#!/usr/bin/env python3
"""Write debian/man/*.8 from the commands' own argparse parsers.

Run by `make man` (`.venv/bin/python scripts/gen-man.py`); the pages are
committed so the package builds need nothing but the source.  The output
has no date in it, so regenerating an unchanged parser changes nothing.
"""

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hasupd import __version__  # noqa: E402

PAGES = {
    "hasupd": ("hasupd.daemon", "two-node failover daemon"),
    "hasupctl": ("hasupd.control.cli", "control and inspect the hasupd cluster"),
    "hasupd-simulate": ("hasupd.simulate", "show what the hasupd planner would do for a view"),
    "hasupd-drbd-handler": (None, "DRBD fence-peer/unfence-peer/split-brain handler"),
}

EXTRA = {
    "hasupd": """.SH FILES
.TP
.I /etc/hasupd/hasupd.yaml
the configuration (the same on both nodes; check it with \\fBhasupctl check\\fR)
.TP
.I /etc/hasupd/authkey
the heartbeat key, mode 0400, made by \\fBhasupctl keygen\\fR and copied to the peer
.TP
.I /var/lib/hasupd/
persisted node state (fail counts, bans, move intents) and the history
.TP
.I /run/hasupd/hasupd.sock
the control socket used by \\fBhasupctl\\fR
.SH EXIT STATUS
0 after a clean stop; 78 (EX_CONFIG) when the configuration or the key is
missing or invalid (systemd does not restart it then).
""",
    "hasupctl": """.SH EXIT STATUS
0 done; 1 refused or failed (and any command but \\fBstatus\\fR when hasupd is
not running); 2 usage; 3 \\fBstatus\\fR when hasupd is not running; 78
(EX_CONFIG) \\fBcheck\\fR found an invalid configuration.
.SH ENVIRONMENT
.TP
.B HASUPD_CONFIG
the configuration file when \\fB\\-\\-config\\fR is not given
.TP
.B HASUPD_SOCKET
the control socket when \\fB\\-\\-socket\\fR is not given
""",
    "hasupd-drbd-handler": """.SH USAGE IN DRBD
.nf
resource r0 {
  disk { fencing resource\\-only; }
  handlers {
    fence\\-peer   "/usr/bin/hasupd\\-drbd\\-handler fence\\-peer";
    unfence\\-peer "/usr/bin/hasupd\\-drbd\\-handler unfence\\-peer";
    split\\-brain  "/usr/bin/hasupd\\-drbd\\-handler split\\-brain";
  }
}
.fi
.SH EXIT STATUS
fence\\-peer: 4 the peer was outdated, 5 the peer is down, 6 the peer is
Primary, 7 the peer was fenced, 1 anything else (DRBD then does not
promote); 2 usage.
.SH ENVIRONMENT
.TP
.B DRBD_RESOURCE, DRBD_PEER, DRBD_PEER_ADDRESS, DRBD_MINOR
set by DRBD when it runs the handler
.TP
.B HASUPD_SOCKET
the daemon's control socket (default /run/hasupd/hasupd.sock)
.TP
.B HASUPD_HANDLER_TIMEOUT
seconds to wait for the daemon's answer (default 60)
""",
}

SEE_ALSO = (".SH SEE ALSO\n.BR hasupd (8),\n.BR hasupctl (8),\n.BR hasupd\\-simulate (8),\n"
            ".BR hasupd\\-drbd\\-handler (8),\n.BR drbdadm (8),\n/usr/share/doc/hasupd/README.md\n")


def handler_parser() -> argparse.ArgumentParser:
    """hasupd-drbd-handler reads only argv[1] (DRBD passes the rest in the environment)."""
    p = argparse.ArgumentParser(
        prog="hasupd-drbd-handler",
        description="DRBD runs this program as its fence-peer, unfence-peer and split-brain handler; "
                    "it asks the local hasupd daemon (through its control socket) and answers with "
                    "DRBD's exit codes. A wrong yes would be a split brain, so every doubt "
                    "(daemon unreachable, timeout, unknown peer state) answers failed.")
    p.add_argument("handler", choices=("fence-peer", "unfence-peer", "split-brain"),
                   help="which DRBD handler is being run")
    return p


def esc(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    # a line starting with . or ' would be read as a request
    return "\n".join("\\&" + ln if ln[:1] in ".'" else ln for ln in text.splitlines())


def usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().replace("usage: ", "").split())


def options(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        flags = ", ".join(action.option_strings) or action.metavar or action.dest
        out += [".TP", f".B {esc(flags)}", esc(action.help or "")]
    return out


def commands(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for cmd, sub in action.choices.items():
            nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
            if nested:
                out += commands(sub)
                continue
            out += [".TP", f".B {esc(usage(sub))}", esc(helps.get(cmd) or sub.description or "")]
            for opt in sub._actions:
                if opt.option_strings and opt.help not in (None, argparse.SUPPRESS) and opt.dest != "help":
                    out += [".RS", ".TP", f".B {esc(', '.join(opt.option_strings))}", esc(opt.help), ".RE"]
    return out


def render(name: str, desc: str, parser: argparse.ArgumentParser) -> str:
    out = [f'.TH {name.upper()} 8 "" "hasupd {__version__}" "System Administration"',
           ".SH NAME", f"{esc(name)} \\- {esc(desc)}", ".SH SYNOPSIS", ".nf", esc(usage(parser)), ".fi"]
    if parser.description:
        out += [".SH DESCRIPTION", esc(parser.description)]
    out += [".SH OPTIONS"] + options(parser)
    cmds = commands(parser)
    if cmds:
        out += [".SH COMMANDS"] + cmds
    text = "\n".join(out) + "\n" + EXTRA.get(name, "") + SEE_ALSO
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description="write the man pages from the parsers")
    ap.add_argument("--outdir", default=str(ROOT / "debian" / "man"))
    outdir = Path(ap.parse_args().outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (module, desc) in PAGES.items():
        parser = importlib.import_module(module).build_parser() if module else handler_parser()
        parser.prog = name
        (outdir / f"{name}.8").write_text(render(name, desc, parser))
    return 0


if __name__ == "__main__":
    sys.exit(main())
