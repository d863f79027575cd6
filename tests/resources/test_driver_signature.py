"""Issue 15: one driver constructor signature, ``(resource, node)``, for every
kind ``make_driver`` builds (it once passed ``node=`` to one driver and
``node_name=`` to another)."""

from __future__ import annotations

import importlib
import inspect

from hasupd.resources import DRIVERS


def test_every_driver_takes_resource_then_node():
    for kind, target in DRIVERS.items():
        module, cls = target.split(":")
        params = list(inspect.signature(getattr(importlib.import_module(module), cls)).parameters.values())
        assert len(params) >= 2, f"{kind}: {params}"
        first, second = params[0], params[1]
        assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and first.default is inspect.Parameter.empty, \
            f"{kind}: the resource comes first and is required: {params}"
        assert second.name == "node" and second.default is None, f"{kind}: the node comes second, optional: {params}"
        # nothing after (resource, node) may be required: make_driver passes only those two
        assert all(p.default is not inspect.Parameter.empty for p in params[2:]), f"{kind}: {params}"
