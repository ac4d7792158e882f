"""Pods started as a StatefulSet's pod template does: `sts-agent init`, the store, the sidecar."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from player.dns import Dnsmasq, statefulset_records
from player.sidecar import Sidecar
from player.stores import harness_class
from player.stores.base import Harness, LoopbackCluster, StoreNode
from player.wait import wait_until


class InitPods:
    """One store's pods on loopback, each started through `sts-agent init`.

    etcd starts from the config init rendered; rqlited from the fixed flags a manifest
    gives it (``-join`` the bootstrap members, ``-bootstrap-expect``), init having made
    the membership ready. DNS publishes every pod, ready or not (publishNotReadyAddresses).
    """

    def __init__(self, store: str, workdir: Path, dns: Dnsmasq, *, bootstrap_expect: int = 3,
                 published: int = 5, harness: Harness[Any] | None = None,
                 namespace: str = "default", env: dict[str, str] | None = None) -> None:
        self.store = store
        self.namespace = namespace
        self.env = dict(env or {})  # more for every init (the API's address and token)
        self.workdir = workdir
        self.dns = dns
        self.bootstrap_expect = bootstrap_expect
        # ``harness``: a store's harness made with options (an etcd version, say).
        self.harness: Harness[Any] = harness or harness_class(store)(workdir)
        self.cluster: LoopbackCluster = self.harness.cluster
        self.init_results: dict[int, subprocess.CompletedProcess[str]] = {}
        workdir.mkdir(parents=True, exist_ok=True)
        dns.set_records(statefulset_records(
            statefulset=store, service=store, namespace=namespace, domain="cluster.local",
            pods={o: self.cluster.ip(o) for o in range(published)}))

    def data_dir(self, ordinal: int) -> Path:
        return self.cluster.workdir / f"{self.store}-{ordinal}" / "data"

    def init_env(self, ordinal: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
        env.update({
            "POD_NAME": f"{self.store}-{ordinal}", "POD_NAMESPACE": self.namespace,
            "POD_IP": self.cluster.ip(ordinal), "AGENT_BACKEND": self.store,
            "AGENT_SERVICE": self.store, "AGENT_DNS_SERVER": self.dns.server,
            "AGENT_CLUSTER_DOMAIN": "cluster.local", "AGENT_ADVERTISE": "ip",
            "AGENT_BOOTSTRAP_EXPECT": str(self.bootstrap_expect),
            "AGENT_DATA_DIR": str(self.data_dir(ordinal)), "AGENT_LOG_FORMAT": "json",
            "AGENT_DNS_WAIT_TIMEOUT_SECONDS": "90",
            # Init answers GET /init there while it runs, as the sidecar does later.
            "AGENT_LISTEN": f"{self.cluster.ip(ordinal)}:9090",
        })
        env.update(self.harness.init_env(ordinal))
        env.update(self.harness.pod_env(ordinal, config_dir=self.config_dir(ordinal),
                                        dns_server=self.dns.server))
        env.update(self.env)
        if self.harness.templates is not None:
            env.update({
                "AGENT_TEMPLATES_DIR": str(self.harness.templates),
                "AGENT_OUTPUT_DIR": str(self.config_dir(ordinal)),
                "AGENT_VAR_DATA_DIR": str(self.data_dir(ordinal)),
                "AGENT_VAR_LISTEN_LOCALHOST": "false",
            })
        return env

    def init_log(self, ordinal: int) -> Path:
        return self.workdir / f"{self.store}-{ordinal}.init.log"

    def config_dir(self, ordinal: int) -> Path:
        return self.workdir / "config" / f"{self.store}-{ordinal}"

    def init(self, ordinal: int, *, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the init container once; its result is kept for the test to read. Its log
        goes to ``init_log(ordinal)`` as it runs, so a test can watch a waiting init."""
        log = self.init_log(ordinal)
        start = log.stat().st_size if log.exists() else 0
        with log.open("a") as out:
            ran = subprocess.run([sys.executable, "-m", "agent", "init"],
                                 env={**self.init_env(ordinal), **(env or {})},
                                 stdout=subprocess.PIPE, stderr=out, text=True, timeout=150)
        with log.open() as written:
            written.seek(start)
            result = subprocess.CompletedProcess(ran.args, ran.returncode, ran.stdout,
                                                 written.read())
        self.init_results[ordinal] = result
        if check and result.returncode != 0:
            raise AssertionError(f"init of {self.store}-{ordinal} exited "
                                 f"{result.returncode}:\n{result.stderr[-3000:]}")
        return result

    def start_store(self, ordinal: int) -> None:
        name = f"{self.store}-{ordinal}"
        node = self.cluster.nodes.get(ordinal) or StoreNode(name, self.cluster.ip(ordinal),
                                                            self.data_dir(ordinal))
        self.cluster.nodes[ordinal] = node
        if self.harness.store_in_sidecar:
            return  # the sidecar's hooks start it
        self.cluster.launch(ordinal, self.cluster.pod_command(
            ordinal, config_dir=self.config_dir(ordinal), bootstrap_expect=self.bootstrap_expect))

    def start_sidecar(self, ordinal: int, *, env: dict[str, str] | None = None) -> Sidecar:
        """The pod's sidecar (a running one stopped first), with ``env`` added."""
        old = self.harness.sidecars.pop(ordinal, None)
        if old is not None:
            old.stop()
        return self.harness.start_sidecar(ordinal, env={
            "AGENT_SEED_URLS": ",".join(self.harness.store_url(o) for o in range(5)
                                        if o != ordinal),
            **self.harness.pod_env(ordinal, config_dir=self.config_dir(ordinal),
                                   dns_server=self.dns.server), **self.env, **(env or {})})

    def start(self, *ordinals: int, env: dict[str, str] | None = None) -> None:
        """Start these pods at once (podManagementPolicy: Parallel): every init runs
        concurrently (with ``env`` added to its own), each store starts as soon as its
        own init is done."""
        def one(ordinal: int) -> None:
            self.init(ordinal, env=env)
            self.start_store(ordinal)
            self.start_sidecar(ordinal)

        with concurrent.futures.ThreadPoolExecutor(len(ordinals)) as pool:
            for future in [pool.submit(one, o) for o in ordinals]:
                future.result()

    def wait_ready(self, *ordinals: int, timeout: float = 90.0) -> None:
        for ordinal in ordinals:
            self.harness.sidecars[ordinal].wait_ready(timeout=timeout)

    def stop(self, ordinal: int, *, wipe: bool = False) -> None:
        """Delete the pod (its volume stays unless ``wipe``: a lost PVC)."""
        sidecar = self.harness.sidecars.pop(ordinal, None)
        if sidecar is not None:
            sidecar.stop()
        node = self.cluster.nodes.get(ordinal)
        if node is not None and node.proc is not None:
            node.proc.stop()
        if self.harness.store_in_sidecar:  # the sidecar's SIGTERM stops the store too
            wait_until(lambda: ordinal not in self.harness.running(),
                       what=f"{self.store}-{ordinal}'s store to stop with its sidecar",
                       timeout=30)
        if wipe:
            shutil.rmtree(self.data_dir(ordinal), ignore_errors=True)

    def remove(self, ordinal: int) -> None:
        """Take the member out through the store, as a scale-down's leave does."""
        def removed() -> bool:
            self.harness.remove_through_store(ordinal)
            return True

        wait_until(removed, what=f"the store to remove {self.store}-{ordinal}", timeout=30)

    def authority(self, ordinal: int) -> dict[str, Any]:
        """The membership the pod's sidecar reports (the leader's own view)."""
        view = self.harness.sidecars[ordinal].status()["view"]["authority"]
        assert isinstance(view, dict)
        return view

    def voters(self, ordinal: int) -> list[str]:
        return sorted(m["name"] for m in self.authority(ordinal)["members"] if m["voter"])

    def members(self, ordinal: int) -> list[str]:
        return sorted(m["name"] for m in self.authority(ordinal)["members"])

    def read_local(self, ordinal: int, key: str) -> str | None:
        """``key`` as this pod's own store has it, without going through the leader."""
        return self.harness.read_local(ordinal, key)

    def logs(self) -> str:
        return self.harness.logs()

    def close(self) -> None:
        self.harness.close()

    def __enter__(self) -> InitPods:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """Everything stopped; the stores' and agents' logs printed first when the block
        failed (a test's output shows them)."""
        if kind is not None:
            print(self.logs())
        self.close()
