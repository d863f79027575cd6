"""Load an imported hasupd.yaml with the real loader (hasupd.config), its secrets files and all.

The importer names the secrets files under its --secrets-dir (/etc/hasupd/fence by
default, which tests do not write): ``load`` writes them with the importer's own
``write_secrets`` into a private directory and points the YAML there, so the loader's
checks (owner root, mode 0600/0400) run against the files the importer writes."""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile

from hasupd import config as configmod
from hasupd.migrate import Imported, write_secrets

_ROOT = tempfile.mkdtemp(prefix="il-secrets-")
atexit.register(shutil.rmtree, _ROOT, True)


def relocate(result: Imported) -> tuple[str, dict[str, str]]:
    """RESULT's text and secrets, the secrets files moved into a fresh private directory."""
    where = tempfile.mkdtemp(dir=_ROOT)
    text, moved = result.text, {}
    for path, content in result.secrets.items():
        new = os.path.join(where, os.path.basename(path))
        text = text.replace(f"secrets: {path}", f"secrets: {new}")
        moved[new] = content
    return text, moved


def load(result: Imported | str, name: str = "hasupd.yaml") -> configmod.Config:
    """The Config of an import (or of a YAML text without secrets files)."""
    if isinstance(result, str):
        return configmod.loads(result, name)
    text, secrets = relocate(result)
    write_secrets(secrets)
    return configmod.loads(text, name)


def without_secrets(cfg: configmod.Config) -> configmod.Config:
    """CFG with no secrets files: they do not travel through Pacemaker's configuration."""
    if cfg.fencing is None:
        return cfg
    devices = tuple(dataclasses.replace(d, secrets=None) for d in cfg.fencing.devices)
    return dataclasses.replace(cfg, fencing=dataclasses.replace(cfg.fencing, devices=devices))
