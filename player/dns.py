"""A dnsmasq answering for headless Services on a loopback address, reloadable while running."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.resolver


class DnsmasqError(RuntimeError):
    """dnsmasq is missing, would not start, or did not pick up a change in time."""


@dataclass(frozen=True, slots=True)
class SrvEntry:
    """One SRV record dnsmasq should serve."""

    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 10


@dataclass(slots=True)
class Records:
    """What the server answers: A/AAAA (name -> addresses, with PTR) and SRV."""

    hosts: dict[str, list[str]] = field(default_factory=dict)
    srv: list[SrvEntry] = field(default_factory=list)

    def add_host(self, name: str, address: str) -> None:
        entries = self.hosts.setdefault(name, [])
        if address not in entries:
            entries.append(address)


def statefulset_records(
    *,
    statefulset: str,
    service: str,
    namespace: str,
    domain: str,
    pods: Mapping[int, str],
    ports: Mapping[str, int] | None = None,
) -> Records:
    """Records a cluster DNS serves for a headless Service with ``pods`` (ordinal -> IP).

    Per-pod A records, the Service name with every pod's address, and one SRV
    record per named port and pod, as CoreDNS does for a headless Service.
    """
    records = Records()
    service_fqdn = f"{service}.{namespace}.svc.{domain}"
    for ordinal, address in sorted(pods.items()):
        pod_fqdn = f"{statefulset}-{ordinal}.{service_fqdn}"
        records.add_host(pod_fqdn, address)
        records.add_host(service_fqdn, address)
        for port_name, port in (ports or {}).items():
            records.srv.append(SrvEntry(f"_{port_name}._tcp.{service_fqdn}", pod_fqdn, port))
    return records


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (best effort; the caller retries)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise DnsmasqError(f"no free port on {host}")


class Dnsmasq:
    """One dnsmasq process, authoritative-only for ``domains``, on ``listen``:``port``."""

    READY_TIMEOUT_SECONDS = 10.0

    def __init__(
        self,
        workdir: Path,
        *,
        listen: str = "127.0.53.1",
        port: int | None = None,
        domains: Sequence[str] = ("cluster.local",),
        binary: str | None = None,
    ) -> None:
        found = binary or shutil.which("dnsmasq") or (
            "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
        )
        if found is None:
            raise DnsmasqError("dnsmasq not found (Debian package dnsmasq-base)")
        self.binary = found
        self.workdir = workdir
        self.listen = listen
        self.port = port or free_port(listen)
        self.domains = list(domains)
        self.records = Records()
        self.generation = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.closed = False  # stopped for good: nothing starts it again
        # start, stop and reloads come from more than one thread (cluster DNS, tests).
        self._lock = threading.RLock()
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def server(self) -> str:
        """``ip:port``, as AGENT_DNS_SERVER takes it."""
        return f"{self.listen}:{self.port}"

    @property
    def hosts_path(self) -> Path:
        return self.workdir / "hosts"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dnsmasq.log"

    def _sentinel(self) -> str:
        return f"gen-{self.generation}.dnsmasq-ready.{self.domains[0]}"

    def _write_hosts(self) -> None:
        lines = [f"127.0.0.1 {self._sentinel()}"]
        for name, addresses in sorted(self.records.hosts.items()):
            lines.extend(f"{address} {name}" for address in addresses)
        temp = self.hosts_path.with_suffix(".tmp")
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(temp, self.hosts_path)

    def _write_conf(self) -> Path:
        conf = [
            "no-resolv",
            "no-hosts",
            "bind-interfaces",
            f"listen-address={self.listen}",
            f"port={self.port}",
            f"addn-hosts={self.hosts_path}",
            "no-negcache",
            "local-ttl=0",
            "pid-file=",
            f"user={getpass.getuser()}",
            f"log-facility={self.log_path}",
            "log-queries",
        ]
        conf += [f"local=/{domain}/" for domain in self.domains]
        conf += [
            f"srv-host={e.name},{e.target},{e.port},{e.priority},{e.weight}"
            for e in self.records.srv
        ]
        path = self.workdir / "dnsmasq.conf"
        path.write_text("\n".join(conf) + "\n", encoding="utf-8")
        return path

    def start(self) -> None:
        """Start dnsmasq and return once it answers."""
        with self._lock:
            if self.closed:
                return
            self._start()

    def _start(self) -> None:
        self.generation += 1
        self._write_hosts()
        conf = self._write_conf()
        self.process = subprocess.Popen(
            [self.binary, "--keep-in-foreground", f"--conf-file={conf}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_for_generation("start")

    def close(self) -> None:
        """Stop dnsmasq for good: a reload arriving later does not start it again."""
        with self._lock:
            self.closed = True
            self.stop()

    def stop(self) -> None:
        """Stop dnsmasq (SIGTERM, then SIGKILL after 5 s)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def set_records(self, records: Records) -> None:
        """Serve ``records`` from now on; returns once dnsmasq answers with them.

        Address changes are a SIGHUP (dnsmasq re-reads its hosts file); SRV changes
        need a restart, since dnsmasq reads srv-host only at start.
        """
        with self._lock:
            srv_changed = records.srv != self.records.srv
            self.records = Records(hosts={k: list(v) for k, v in records.hosts.items()},
                                   srv=list(records.srv))
            if self.process is None:
                return  # stopped: the next start serves them
            if srv_changed:
                self._stop()
                self._start()
                return
            self.generation += 1
            self._write_hosts()
            self.process.send_signal(signal.SIGHUP)
            self._wait_for_generation("reload")

    def _wait_for_generation(self, what: str) -> None:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.listen]
        resolver.port = self.port
        resolver.lifetime = 0.1
        deadline = time.monotonic() + self.READY_TIMEOUT_SECONDS
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise DnsmasqError(f"dnsmasq exited during {what}: {stderr.strip()}")
            try:
                resolver.resolve(self._sentinel() + ".", "A")
                return
            except (dns.exception.DNSException, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)  # poll interval while waiting for the sentinel name
        raise DnsmasqError(
            f"dnsmasq on {self.server} did not answer {self._sentinel()} within "
            f"{self.READY_TIMEOUT_SECONDS}s after {what}: {last}"
        )

    def __enter__(self) -> Dnsmasq:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
