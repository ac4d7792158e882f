"""The store registry: every folder under agent/stores/ registered, every spec loadable,
and every registered store enrolled where the tests and the player need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.registry import STORES, store_spec
from agent.storekit.capabilities import Departing

ROOT = Path(__file__).resolve().parents[2]


def test_every_store_folder_is_registered_and_every_registered_store_has_one() -> None:
    folders = {p.name for p in (ROOT / "agent" / "stores").iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(STORES)


@pytest.mark.parametrize("store", sorted(STORES))
def test_spec_loads_its_classes_from_its_own_folder(store: str) -> None:
    spec = store_spec(store)
    assert spec.name == store
    backend = spec.backend_class()
    assert backend.__module__.startswith(f"agent.stores.{store}.")
    assert backend.name == store
    # What the backend is decides how its member leaves: one of the two, never both.
    raft = all(callable(getattr(backend, name, None))
               for name in ("remove", "transfer_leadership"))
    assert raft != issubclass(backend, Departing), store
    assert spec.raft == raft, f"{store}: the registry's raft flag says otherwise"
    prestart = spec.prestart_class()
    if prestart is not None:
        assert prestart.__module__.startswith(f"agent.stores.{store}.")
    assert spec.default_url == f"{spec.url_scheme}://127.0.0.1:{spec.client_port}"
    assert 0 < spec.client_port < 65536 and 0 < spec.peer_port < 65536
    assert spec.removal_seconds > 0


def test_unknown_store_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: " + ", ".join(STORES)):
        store_spec("zookeeper")


@pytest.mark.parametrize("store", sorted(STORES))
def test_every_store_has_a_test_folder_and_a_harness(store: str) -> None:
    """Where a new store must also be enrolled: its unit tests (with the real answers the
    parser property tests use), the player's harness, and a k8s example."""
    assert (ROOT / "tests" / "unit" / "stores" / store / "answers.py").is_file()
    assert (ROOT / "player" / "stores" / f"{store}.py").is_file()
    # Named for the store, or (a store of any store's hooks: exec) for what it runs.
    examples = [ROOT / "k8s" / store, *sorted((ROOT / "k8s").glob(f"{store}-*"))]
    assert any((example / "kustomization.yaml").is_file() for example in examples)
