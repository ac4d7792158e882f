"""The control plane's certificates, made with openssl: a CA, the API server's serving
certificate, client certificates (admin, controllers, scheduler, nodes), the service-account
signing key."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


_ISSUING = threading.Lock()


class Pki:
    """Everything lives in ``directory``; names are stable, so a second call reuses files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = KeyPair(self.dir / "ca.crt", self.dir / "ca.key")
        if not self.ca.cert.exists():
            self._key(self.ca.key)
            _openssl("req", "-x509", "-new", "-key", self.ca.key.name, "-out",
                     self.ca.cert.name, "-days", "3650", "-subj", "/CN=sts-agent-player-ca",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def _key(self, path: Path) -> None:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", path.name, cwd=self.dir)

    def issue(self, name: str, *, common_name: str, organization: str | None = None,
              sans: tuple[str, ...] = (), server: bool = False) -> KeyPair:
        """A certificate signed by the CA: a client's (CN = user, O = group) or a server's.
        One at a time: the CA's serial file is shared, and two callers asking for the same
        name (two nodes starting at once) get one key and its certificate."""
        with _ISSUING:
            return self._issue(name, common_name=common_name, organization=organization,
                               sans=sans, server=server)

    def _issue(self, name: str, *, common_name: str, organization: str | None,
               sans: tuple[str, ...], server: bool) -> KeyPair:
        pair = KeyPair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        if pair.cert.exists():
            return pair
        self._key(pair.key)
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        _openssl("req", "-new", "-key", pair.key.name, "-out", f"{name}.csr", "-subj", subject,
                 cwd=self.dir)
        usage = "serverAuth" if server else "clientAuth"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
                 f"extendedKeyUsage={usage}"]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        (self.dir / f"{name}.ext").write_text("\n".join(lines) + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", self.ca.cert.name, "-CAkey",
                 self.ca.key.name, "-CAcreateserial", "-out", pair.cert.name, "-days", "3650",
                 "-extfile", f"{name}.ext", cwd=self.dir)
        return pair

    def service_account_keys(self) -> KeyPair:
        """The key the API server signs service-account tokens with (cert = public key)."""
        pair = KeyPair(self.dir / "sa.pub", self.dir / "sa.key")
        if not pair.key.exists():
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", pair.key.name, cwd=self.dir)
            _openssl("pkey", "-in", pair.key.name, "-pubout", "-out", pair.cert.name,
                     cwd=self.dir)
        return pair
