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
import contextlib
import os
import sys
from dataclasses import dataclass, field

from hasupd import config as configmod
from hasupd.migrate import cib as cibmod
from hasupd.migrate import corosync as corosyncmod
from hasupd.migrate import crm as crmmod
from hasupd.migrate import drbdconf, importer
from hasupd.migrate import pcs as pcsmod
from hasupd.migrate.common import EX_DATAERR, DataError, Note, Refused
from hasupd.migrate.export import Exported, export_config

__all__ = ["import_config", "export_config", "cli_import", "cli_export", "Imported", "Exported", "Refused",
           "DataError", "EX_DATAERR"]


@dataclass
class Imported:
    text: str  # hasupd.yaml
    notes: list[Note]
    secrets: dict[str, str] = field(default_factory=dict)  # secrets file path -> key=value lines


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a text file") from None


def _as_list(paths) -> list[str]:
    if paths is None:
        return []
    return [paths] if isinstance(paths, str) else list(paths)


def detect(text: str) -> str:
    """crm, pcs or cib: what a Pacemaker configuration file holds."""
    if text.lstrip().startswith("<"):
        return "cib"
    return "pcs" if pcsmod.looks_like_pcs(text) else "crm"


def read_pacemaker(crm=None, pcs=None, cib=None) -> crmmod.CrmConfig:
    """Pacemaker's configuration from crm files, pcs scripts/output or CIB XML (one kind;
    several files of it are read as one, in order).  --crm files are told apart by content."""
    files: list[tuple[str, str, str]] = []  # (kind, path, text)
    for kind, paths in (("crm", crm), ("pcs", pcs), ("cib", cib)):
        for path in _as_list(paths):
            text = _read(path)
            files.append((detect(text) if kind == "crm" else kind, path, text))
    if not files:
        raise DataError("hasupctl import", "no Pacemaker configuration given (--crm, --pcs or --cib)")
    kinds = {k for k, _p, _t in files}
    if len(kinds) > 1:
        raise DataError(files[0][1], f"give one kind of Pacemaker configuration, not {' and '.join(sorted(kinds))}")
    kind = files[0][0]
    if kind == "cib" and len(files) > 1:
        raise DataError(files[1][1], "give one CIB (the whole configuration is in one)")
    cfg = crmmod.CrmConfig(", ".join(p for _k, p, _t in files))
    joined = []
    line = 1
    for _k, path, text in files:
        cfg.sources.append((line, path))
        joined.append(text if text.endswith("\n") or not text else text + "\n")
        line += len(joined[-1].splitlines())
    text = "".join(joined)
    parse = {"cib": cibmod.parse, "pcs": pcsmod.parse, "crm": crmmod.parse}[kind]
    parse(text, cfg.path, cfg)
    if crm and kind != "crm":
        what = "CIB XML" if kind == "cib" else "pcs commands or `pcs config` output"
        cfg.notes.append(Note(cfg.path, "info", f"--crm: read as {what} (recognised by its content)"))
    return cfg


def import_config(crm=None, corosync: str | None = None, drbd: str | None = None,
                  hosts: str | None = None, pcs=None, cib=None,
                  secrets_dir: str = importer.DEFAULT_SECRETS_DIR) -> Imported:
    """Read the files (paths) and build hasupd.yaml; DataError when one cannot be parsed.
    CRM, PCS and CIB take one path or a list; passwords of stonith devices go to
    secrets files under SECRETS_DIR (returned in ``Imported.secrets``, never in the text)."""
    crm_cfg = read_pacemaker(crm, pcs, cib)
    coro = corosyncmod.parse(_read(corosync), corosync) if corosync else None
    info = None
    if drbd:
        if not os.path.exists(drbd):
            raise DataError(drbd, "no such file or directory")
        stmts, notes = drbdconf.load(drbd)
        info = drbdconf.interpret(stmts)
        info.notes[:0] = notes
    host_map = importer.parse_hosts(_read(hosts), hosts) if hosts else None
    sources = [f"{crm_cfg.fmt} {crm_cfg.path}"] + [f"{k} {v}" for k, v in (("corosync", corosync),
                                                                            ("drbd", drbd), ("hosts", hosts)) if v]
    text, notes, secrets = importer.build(crm_cfg, coro, info, host_map, sources, os.path.abspath(secrets_dir))
    if crm_cfg.ignored_output:
        what = "pcs session commands (auth, cluster start/cib/cib-push ...)" if crm_cfg.fmt == "pcs" else \
            "crm session output and session commands (WARNING:/ERROR:, verify, commit, exit, bye)"
        notes.append(Note(crm_cfg.path, "info", f"skipped {crm_cfg.ignored_output} lines of {what}"))
    return Imported(text, notes, secrets)


def write_secrets(secrets: dict[str, str]) -> dict[str, str | None]:
    """Each secrets file root-only (0600) from its first byte; its directory 0700.
    Returns what was there before (path -> old content, None: no file) for undo_secrets."""
    before: dict[str, str | None] = {}
    for path in secrets:
        try:
            with open(path, encoding="utf-8") as f:
                before[path] = f.read()
        except FileNotFoundError:
            before[path] = None
    for path, content in secrets.items():
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, path)
    return before


def undo_secrets(before: dict[str, str | None]) -> None:
    """Put back what write_secrets replaced: the import was not written after all."""
    for path, old in before.items():
        if old is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            write_secrets({path: old})


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
    p.add_argument("--crm", action="append", metavar="FILE",
                   help="crm shell configuration: `crm configure show` output or a pasted crm session "
                        "(pcs and CIB XML are recognised too); repeat for several files")
    p.add_argument("--pcs", action="append", metavar="FILE",
                   help="pcs commands (a script, a pasted session) or `pcs config` output; repeatable")
    p.add_argument("--cib", metavar="FILE", help="CIB XML (`cibadmin -Q`, `pcs cluster cib`)")
    p.add_argument("--secrets-dir", default=importer.DEFAULT_SECRETS_DIR, metavar="DIR",
                   help="where stonith passwords/keys go, one FILE.secret per device, mode 0600 "
                        "(default %(default)s); they are never written into the YAML")
    p.add_argument("--corosync", metavar="FILE", help="corosync.conf (heartbeat rings, node addresses)")
    p.add_argument("--drbd", metavar="DIR_OR_FILE", help="/etc/drbd.d, drbd.conf or a .res file")
    p.add_argument("--hosts", metavar="FILE", help="/etc/hosts, to resolve names and cross-check addresses")
    p.add_argument("-o", "--output", metavar="FILE", help="write hasupd.yaml here (default: stdout)")
    return p


def cli_import(argv: list[str] | None = None) -> int:
    parser = import_parser()
    args = parser.parse_args(argv)
    if not (args.crm or args.pcs or args.cib):
        parser.error("give the Pacemaker configuration: --crm, --pcs or --cib")
    try:
        result = import_config(args.crm, args.corosync, args.drbd, args.hosts, pcs=args.pcs, cib=args.cib,
                               secrets_dir=args.secrets_dir)
    except DataError as e:
        if e.notes:
            print(summary(e.notes), file=sys.stderr)
        print(f"hasupctl import: {e}", file=sys.stderr)
        return EX_DATAERR
    print(summary(result.notes), file=sys.stderr)
    # the secrets files first: the check reads them (owner root, mode 0600)
    try:
        before = write_secrets(result.secrets)
    except OSError as e:
        print(f"hasupctl import: cannot write the stonith secrets: {e} (choose --secrets-dir)", file=sys.stderr)
        return configmod.EX_CONFIG
    try:
        cfg = configmod.loads(result.text, args.output or "<import>")
    except configmod.ConfigError as e:
        undo_secrets(before)
        print(f"hasupctl import: the result would not pass `hasupctl check`: {e}", file=sys.stderr)
        if args.output:
            _write(args.output + ".rejected", result.text)
            print(f"hasupctl import: written to {args.output}.rejected for inspection", file=sys.stderr)
        return configmod.EX_CONFIG
    for warning in cfg.warnings:
        print(f"  hasupctl check: warning: {warning}", file=sys.stderr)
    if result.secrets:
        print(f"hasupctl import: wrote {', '.join(sorted(result.secrets))} (mode 0600)", file=sys.stderr)
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
                   help="crm syntax for Pacemaker 2 (promotable clone, Promoted; default) or 1.1 (ms, Master; "
                        "the DRBD file in DRBD 8.4 syntax)")
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
