"""Resource drivers, one per file; ``make_driver`` picks one by type."""

from __future__ import annotations

import importlib

# type in hasupd.yaml -> "module:Class"
DRIVERS = {
    "filesystem": "hasupd.resources.filesystem:FilesystemDriver",
    "vip": "hasupd.resources.vip:VipDriver",
    "httpd": "hasupd.resources.httpd:HttpdDriver",
    "systemd_unit": "hasupd.resources.systemd_unit:SystemdUnitDriver",
    "ocf": "hasupd.resources.ocf:OcfDriver",
}


def make_driver(resource, node: str | None = None):
    """A driver for one configured resource (a hasupd.config resource dataclass)."""
    module, cls = DRIVERS[resource.type].split(":")
    factory = getattr(importlib.import_module(module), cls)
    if resource.type == "filesystem":
        return factory(resource, node=node)
    if resource.type == "ocf":
        return factory(resource, node_name=node)
    return factory(resource)
