"""Backend registry: store name -> adapter class, imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.backends.base import Backend

# name -> "module:Class"; the import happens on first use, so a pod running one
# store never loads the others' code.
BACKENDS: dict[str, str] = {
    "etcd": "agent.backends.etcd:EtcdBackend",
    "rqlite": "agent.backends.rqlite:RqliteBackend",
    "consul": "agent.backends.consul:ConsulBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The adapter class registered as ``name``; KeyError names the known ones."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls
