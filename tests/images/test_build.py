"""make images: what it refuses, and that a second run builds nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.images.conftest import ROOT


def builder() -> ModuleType:
    """scripts/build_images.py as a module."""
    spec = importlib.util.spec_from_file_location("build_images",
                                                  ROOT / "scripts" / "build_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_images", module)
    spec.loader.exec_module(module)
    return module


def test_a_pin_the_mirror_does_not_serve_is_named() -> None:
    build = builder()
    with pytest.raises(build.BuildError) as raised:
        build.check_pins("apt-get install -y python3=3.11.2-1+b1 \\\n"
                         "    rsync=0.0.1-not-served tini=0.19.0-1+b3")
    message = str(raised.value)
    assert "rsync=0.0.1-not-served" in message
    assert "python3" not in message and "tini" not in message


def test_the_pins_of_the_dockerfile_and_the_mariadb_image_are_served() -> None:
    build = builder()
    for file in ("Dockerfile", "images/mariadb/Containerfile"):
        build.check_pins((ROOT / file).read_text())


def test_a_second_build_builds_nothing() -> None:
    """make test ran make images first: every image is cached under its current key."""
    report = builder().build_all([], force=False)
    built = [name for name, what, _, _ in report if what != "cached"]
    assert built == []
    assert len(report) == len(builder().catalogue())


def test_every_image_has_a_distinct_archive() -> None:
    images = builder().catalogue()
    archives = [image.archive for image in images]
    assert len(set(archives)) == len(archives)
    assert all(isinstance(a, Path) for a in archives)


def test_the_registry_serves_every_image_a_node_pulls(tmp_path: Path) -> None:
    """make images pushed each image into the registry storage the real node serves:
    read-only, under its path without the registry host, at its tag."""
    from player.registry import Registry, repository_path

    build = builder()
    with Registry(tmp_path, "127.0.0.1", port=build.free_port()) as registry:
        for image in build.catalogue():
            repository, _, tag = repository_path(image.name).rpartition(":")
            assert tag in registry.tags(repository), image.name
        refused = httpx.post(f"http://{registry.endpoint}/v2/library/x/blobs/uploads/",
                             timeout=5.0, trust_env=False)
        assert refused.status_code == 405  # a node's registry never takes a push
