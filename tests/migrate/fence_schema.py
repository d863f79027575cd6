"""The `fencing:` objects of fence-schema.md, built from the imported YAML as data.

Test-only and temporary: the loader in this branch does not know `fencing:` yet
(config.py gets it in another branch); once merged, tests use cfg.fencing."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from hasupd import config as configmod
from hasupd.migrate.common import pcmk_seconds


@dataclass(frozen=True)
class FenceDevice:
    name: str
    agent: str | None
    command: tuple[str, ...] | None
    nodes: tuple[str, ...]
    plugs: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    secrets: str | None
    timeout: float
    retries: int
    delay: float


@dataclass(frozen=True)
class Fencing:
    devices: tuple[FenceDevice, ...]
    levels: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]
    owner_head_start: float
    random_delay_max: float


def _s(v, default: float) -> float:
    return default if v is None else float(pcmk_seconds(str(v)))


def fencing_from_dict(d: dict) -> Fencing:
    devices = tuple(FenceDevice(
        x["name"], x.get("agent"), tuple(x["command"]) if x.get("command") else None, tuple(x["nodes"]),
        tuple((str(k), str(v)) for k, v in (x.get("plugs") or {}).items()),
        tuple((str(k), str(v)) for k, v in (x.get("options") or {}).items()), x.get("secrets"),
        _s(x.get("timeout"), 20.0), int(x.get("retries", 1)), _s(x.get("delay"), 0.0)) for x in d["devices"])
    levels = tuple((n, tuple(tuple(lvl) for lvl in lv)) for n, lv in (d.get("levels") or {}).items())
    return Fencing(devices, levels, _s(d.get("owner_head_start"), 0.0), _s(d.get("random_delay_max"), 0.0))


def load(text: str, name: str = "hasupd.yaml"):
    """configmod.loads, with the `fencing:` section (fence-schema.md) attached as data.

    The loader in this branch does not know `fencing:` yet (another branch adds it):
    until the merge the section is taken out, checked for its shape, and attached
    to the Config as the schema's objects so that the exporter can write it back."""
    doc = yaml.safe_load(text)
    fencing = doc.pop("fencing", None)
    if fencing is None:
        return configmod.loads(text, name)
    assert doc["split_brain_guard"]["mode"] == "fence"
    doc["split_brain_guard"] = {"mode": "none"}
    cfg = configmod.loads(yaml.safe_dump(doc), name)
    object.__setattr__(cfg, "fencing", fencing_from_dict(fencing))
    return cfg
