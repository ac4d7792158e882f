"""One module a store, named as the agent's registry names it: its cluster, client, harness.

Lookups go through the registry's names, so a new store is found here by its module alone.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from agent.registry import STORES

if TYPE_CHECKING:
    import httpx

    from player.stores.base import Harness, Image, Kv


def store_module(store: str) -> ModuleType:
    """``player.stores.<store>`` for a store the agent registers."""
    if store not in STORES:
        raise KeyError(f"unknown store {store!r}; known: {', '.join(STORES)}")
    return importlib.import_module(f"{__name__}.{store}")


def harness_class(store: str) -> type[Harness[Any]]:
    """The test harness of ``store`` (its module's ``HARNESS``)."""
    cls: type[Harness[Any]] = store_module(store).HARNESS
    return cls


def kv_client(store: str, http: httpx.Client) -> Kv:
    """A key-value client for ``store`` over ``http``."""
    return harness_class(store).kv_class(http)


def store_images() -> dict[str, Image]:
    """Every store's container images, as the kubelet plays them."""
    images: dict[str, Image] = {}
    for store in STORES:
        images.update(store_module(store).IMAGES)
    return images
