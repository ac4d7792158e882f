"""The sidecar's composition root: secrets kept out of what it shows, default seeds."""

from __future__ import annotations

from agent.config.settings import Settings
from agent.sidecar import default_seeds, redact


def test_store_url_credentials_redacted() -> None:
    assert redact("http://agent:s3cret@127.0.0.1:4001") == "http://***@127.0.0.1:4001"
    assert redact("http://127.0.0.1:4001/a@b") == "http://127.0.0.1:4001/a@b"


def test_default_seeds_from_stable_names() -> None:
    settings = Settings(backend="etcd", pod_name="etcd-3", service="etcd", namespace="prod")
    assert default_seeds(settings, "cluster.local") == [
        f"http://etcd-{o}.etcd.prod.svc.cluster.local:2379" for o in range(3)]
    # spec.ordinals.start 1: no etcd-0 is asked, it never exists.
    shifted = Settings(backend="etcd", pod_name="etcd-1", service="etcd", namespace="prod",
                       ordinals_start=1)
    assert default_seeds(shifted, "cluster.local") == [
        f"http://etcd-{o}.etcd.prod.svc.cluster.local:2379" for o in (2, 3)]
    explicit = Settings(backend="etcd", seed_urls="http://a:1, http://b:2/")
    assert default_seeds(explicit, "cluster.local") == ["http://a:1", "http://b:2"]
    assert default_seeds(Settings(backend="etcd"), "cluster.local") == []
