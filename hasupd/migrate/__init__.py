"""Migration both ways between Pacemaker (crm/pcs, corosync.conf, DRBD files)
and hasupd.yaml.

Library: ``import_config(crm=..., corosync=..., drbd=..., hosts=...)`` ->
``Imported(text, notes)``; ``export_config(cfg, "crm"|"pcs")`` ->
``Exported(script, corosync, drbd, notes)``.  CLI (wired into hasupctl):
``cli_import(argv)`` / ``cli_export(argv)`` -> exit code: 0 ok,
65 (EX_DATAERR) unparseable input (file:line), 78 (EX_CONFIG) the result
would not pass the configuration check.  Also ``python -m hasupd.migrate``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from hasupd import config as configmod
from hasupd.migrate import corosync as corosyncmod
from hasupd.migrate import crm as crmmod
from hasupd.migrate import drbdconf, importer
from hasupd.migrate.common import EX_DATAERR, DataError, Note
from hasupd.migrate.export import Exported, export_config

__all__ = ["import_config", "export_config", "cli_import", "cli_export", "Imported", "Exported",
           "DataError", "EX_DATAERR"]


@dataclass
class Imported:
    text: str  # hasupd.yaml
    notes: list[Note]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a text file") from None


def import_config(crm: str, corosync: str | None = None, drbd: str | None = None,
                  hosts: str | None = None) -> Imported:
    """Read the files (paths) and build hasupd.yaml; DataError when one cannot be parsed."""
    crm_cfg = crmmod.parse(_read(crm), crm)
    coro = corosyncmod.parse(_read(corosync), corosync) if corosync else None
    info = None
    if drbd:
        if not os.path.exists(drbd):
            raise DataError(drbd, "no such file or directory")
        stmts, notes = drbdconf.load(drbd)
        info = drbdconf.interpret(stmts)
        info.notes[:0] = notes
    host_map = importer.parse_hosts(_read(hosts), hosts) if hosts else None
    sources = [f"crm {crm}"] + [f"{k} {v}" for k, v in (("corosync", corosync), ("drbd", drbd),
                                                         ("hosts", hosts)) if v]
    text, notes = importer.build(crm_cfg, coro, info, host_map, sources)
    if crm_cfg.ignored_output:
        notes.append(Note(crm, "info", f"skipped {crm_cfg.ignored_output} lines of crm session output and "
                          "session commands (WARNING:/ERROR:, verify, commit, exit, bye)"))
    return Imported(text, notes)


_ORDER = {"unknown": 0, "dropped": 1, "warning": 2, "info": 3}


def summary(notes: list[Note]) -> str:
    if not notes:
        return "everything was carried over"
    counts = {k: sum(1 for n in notes if n.kind == k) for k in _ORDER}
    head = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    lines = [f"import summary: {head}"]
    for n in sorted(notes, key=lambda n: _ORDER.get(n.kind, 9)):
        lines.append("  " + n.render())
    return "\n".join(lines)


def _write(path: str | None, text: str) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def import_parser(prog: str = "hasupctl import") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Pacemaker/corosync/DRBD configuration -> hasupd.yaml")
    p.add_argument("--crm", required=True, metavar="FILE",
                   help="crm shell configuration: `crm configure show` output or a pasted crm session")
    p.add_argument("--corosync", metavar="FILE", help="corosync.conf (heartbeat rings, node addresses)")
    p.add_argument("--drbd", metavar="DIR_OR_FILE", help="/etc/drbd.d, drbd.conf or a .res file")
    p.add_argument("--hosts", metavar="FILE", help="/etc/hosts, to resolve names and cross-check addresses")
    p.add_argument("-o", "--output", metavar="FILE", help="write hasupd.yaml here (default: stdout)")
    return p


def cli_import(argv: list[str] | None = None) -> int:
    args = import_parser().parse_args(argv)
    try:
        result = import_config(args.crm, args.corosync, args.drbd, args.hosts)
    except DataError as e:
        print(f"hasupctl import: {e}", file=sys.stderr)
        return EX_DATAERR
    print(summary(result.notes), file=sys.stderr)
    try:
        cfg = configmod.loads(result.text, args.output or "<import>")
    except configmod.ConfigError as e:
        print(f"hasupctl import: the result would not pass `hasupctl check`: {e}", file=sys.stderr)
        if args.output:
            _write(args.output + ".rejected", result.text)
            print(f"hasupctl import: written to {args.output}.rejected for inspection", file=sys.stderr)
        return configmod.EX_CONFIG
    for warning in cfg.warnings:
        print(f"  hasupctl check: warning: {warning}", file=sys.stderr)
    _write(args.output, result.text)
    if args.output:
        print(f"hasupctl import: wrote {args.output}", file=sys.stderr)
    return 0


def export_parser(prog: str = "hasupctl export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="hasupd.yaml -> Pacemaker (crm or pcs) + corosync.conf "
                                "+ DRBD resource file")
    p.add_argument("--config", default=configmod.DEFAULT_PATH, help="hasupd.yaml (default %(default)s)")
    p.add_argument("--format", choices=("crm", "pcs"), required=True)
    p.add_argument("--pacemaker", choices=("2", "1.1"), default="2",
                   help="crm syntax for Pacemaker 2 (promotable clone, Promoted; default) or 1.1 (ms, Master)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="the crm/pcs script; the corosync.conf and DRBD parts go beside it as "
                        "STEM.corosync.conf and STEM.drbd.res (default: everything on stdout)")
    p.add_argument("--corosync-out", metavar="FILE", help="where to write the corosync.conf part")
    p.add_argument("--drbd-out", metavar="FILE", help="where to write the DRBD resource file")
    return p


def cli_export(argv: list[str] | None = None) -> int:
    args = export_parser().parse_args(argv)
    try:
        cfg = configmod.load(args.config)
    except configmod.ConfigError as e:
        print(f"hasupctl export: {e}", file=sys.stderr)
        return configmod.EX_CONFIG
    out = export_config(cfg, args.format, legacy=args.pacemaker == "1.1")
    for n in out.notes:
        print(f"not carried over: {n}", file=sys.stderr)
    if args.output in (None, "-") and not args.corosync_out and not args.drbd_out:
        parts = [out.script, "# ---- corosync.conf (totem, nodelist, quorum) ----", _commented(out.corosync)]
        if out.drbd:
            parts += ["# ---- DRBD resource file (/etc/drbd.d/) ----", _commented(out.drbd)]
        sys.stdout.write("\n".join(parts))
        return 0
    stem = os.path.splitext(args.output)[0] if args.output not in (None, "-") else "hasupd-export"
    _write(args.output, out.script)
    written = [args.output or "stdout"]
    coro_path = args.corosync_out or f"{stem}.corosync.conf"
    _write(coro_path, out.corosync)
    written.append(coro_path)
    if out.drbd:
        drbd_path = args.drbd_out or f"{stem}.drbd.res"
        _write(drbd_path, out.drbd)
        written.append(drbd_path)
    print(f"hasupctl export: wrote {', '.join(written)}", file=sys.stderr)
    return 0


def _commented(text: str) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("import", "export"):
        print("usage: python -m hasupd.migrate {import|export} ...", file=sys.stderr)
        return 64
    return cli_import(argv[1:]) if argv[0] == "import" else cli_export(argv[1:])
