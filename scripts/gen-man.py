#!/usr/bin/env python3
"""Write debian/man/*.8 from the commands' own argparse parsers.

Run by `make man`; the pages are committed so the package build needs
nothing but the source.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hasupd import __version__  # noqa: E402

PAGES = {
    "hasupd": ("hasupd.daemon", "two-node failover daemon"),
    "hasupctl": ("hasupd.control.cli", "control and inspect the hasupd cluster"),
    "hasupd-simulate": ("hasupd.simulate", "show what the hasupd planner would do for a view"),
    "hasupd-drbd-handler": ("hasupd.resources.drbd_handler", "DRBD fence-peer/unfence-peer/split-brain handler"),
}

SEE_ALSO = ".SH SEE ALSO\n.BR hasupd (8),\n.BR hasupctl (8),\n.BR drbdadm (8),\n/usr/share/doc/hasupd/README.md\n"


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-")


def render(name: str, desc: str, parser: argparse.ArgumentParser) -> str:
    out = [f'.TH {name.upper()} 8 "" "hasupd {__version__}" "System Administration"',
           ".SH NAME", f"{esc(name)} \\- {esc(desc)}", ".SH SYNOPSIS", ".nf",
           esc(parser.format_usage().replace("usage: ", "").strip()), ".fi"]
    if parser.description:
        out += [".SH DESCRIPTION", esc(parser.description)]
    out.append(".SH OPTIONS")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        flags = ", ".join(action.option_strings) or action.dest
        out += [".TP", f".B {esc(flags)}", esc(action.help or "")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.append(".SH COMMANDS")
            helps = {a.dest: a.help for a in action._choices_actions}
            for cmd, sub in action.choices.items():
                out += [".TP", f".B {esc(sub.format_usage().replace('usage: ', '').strip())}",
                        esc(helps.get(cmd) or sub.description or "")]
    out.append(SEE_ALSO)
    return "\n".join(out) + "\n"


def main() -> int:
    import importlib
    outdir = Path(__file__).resolve().parents[1] / "debian" / "man"
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (module, desc) in PAGES.items():
        mod = importlib.import_module(module)
        parser = mod.build_parser()
        (outdir / f"{name}.8").write_text(render(name, desc, parser))
    return 0


if __name__ == "__main__":
    sys.exit(main())
