"""Every image the examples name is built, and what is in it, read from its archive: the
distroless bases have no shell and no package manager, the exec-galera image runs its
hooks under tini."""

from __future__ import annotations

import pytest

from player import manifests
from player.runtime import archive, full_name, image_config, image_files
from tests.images.conftest import ROOT

EXAMPLES = sorted(p.parent for p in (ROOT / "k8s").rglob("kustomization.yaml")
                  if (p.parent / "statefulset.yaml").exists() or p.parent.parent.name
                  == "native-sidecar")


def named_images() -> set[str]:
    """Every container image the k8s/ examples (and their overlays) name."""
    names = set()
    for example in EXAMPLES:
        for obj in manifests.build(example):
            if obj["kind"] != "StatefulSet":
                continue
            pod = obj["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                names.add(container["image"])
    return names


def test_every_image_the_examples_name_is_built() -> None:
    named = named_images()
    assert len(named) >= 7, named
    missing = sorted(full_name(n) for n in named if not archive(n).is_file())
    assert not missing, f"named in k8s/ but not built by make images: {missing}"


@pytest.mark.parametrize("image", ["gcr.io/distroless/python3-debian12:nonroot",
                                   "sts-agent:0.1.0"])
def test_the_distroless_image_has_no_shell_and_no_package_manager(image: str) -> None:
    files = image_files(image, read=("etc/passwd", "etc/ssl/certs/ca-certificates.crt"))
    present = [p for p in ("bin/sh", "usr/bin/sh", "bin/bash", "bin/dash", "usr/bin/dpkg",
                           "usr/bin/apt", "usr/bin/apt-get", "bin/busybox") if p in files]
    assert present == [], f"{image} has {present}"
    assert "usr/bin/python3" in files
    assert b"BEGIN CERTIFICATE" in files["etc/ssl/certs/ca-certificates.crt"]
    assert b"nonroot:x:65532:65532:" in files["etc/passwd"]
    assert image_config(image).get("User") == "65532:65532"


def test_the_exec_galera_image_runs_its_hooks_under_tini() -> None:
    """The RSS hooks are shell scripts the sidecar runs as children of the store's
    container: tini reaps them and forwards the kubelet's SIGTERM."""
    image = next(n for n in named_images() if n.startswith("sts-agent-exec-galera:"))
    assert image_config(image)["Entrypoint"][:2] == ["tini", "--"]
    assert "usr/bin/tini" in image_files(image)
