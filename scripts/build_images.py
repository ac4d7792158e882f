"""Build every image the k8s/ examples name, offline, from Debian's packages and our builds.

Bases are made with mmdebstrap and tagged with the names the FROM lines use; our Dockerfile
is built as it is; the stores' images come from the binaries scripts/build_peers.sh makes
(images/<store>/Containerfile). Each image's inputs give a cache key: an image whose key
is unchanged is not built again. Results are OCI archives under <cache>/images/, and the
same images in the storage of the registry the real node pulls from (player/registry.py),
and pulled once into the image store each real node starts from (player/nodeimages.py).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from player import nodeimages
from player.peers import CACHE, cached_binary, pinned
from player.registry import STORAGE as REGISTRY
from player.registry import Registry, free_port, repository_path
from player.stores.etcd import VERSIONS as ETCD_VERSIONS
from player.stores.etcd import etcd_binary
from player.stores.etcd import image_tag as etcd_tag

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
OUT = CACHE / "images"
STORAGE = OUT / "storage"  # buildah's own store: the bases our FROM lines find
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUITE = "bookworm"
AGENT_VERSION = "0.1.0"

# distroless's properties, kept by the stand-ins: no shell, no package manager, the nonroot
# user. mmdebstrap's extract variant unpacks packages and their dependencies without running
# any maintainer script, so nothing in the image needs a shell.
DISTROLESS_REMOVE = (
    "bin/sh bin/dash bin/bash bin/rbash usr/bin/dpkg* usr/bin/debconf* usr/bin/apt* "
    "usr/sbin/dpkg* usr/bin/update-alternatives bin/tar usr/share/man usr/share/doc "
    "usr/share/locale usr/share/info var/lib/dpkg var/cache/debconf"
)
DISTROLESS_USERS = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
DISTROLESS_GROUPS = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"


class BuildError(RuntimeError):
    """An image could not be built; the message says which and why."""


@dataclass(frozen=True)
class Image:
    """One image: its name as the manifests write it, how it is built, what it is made of."""

    name: str
    build: Callable[[Image, Path], None]
    inputs: tuple[str, ...] = ()  # files and folders of this checkout in the key
    words: tuple[str, ...] = ()  # anything else in the key (package lists, versions)
    bases: tuple[str, ...] = ()  # images it is built FROM (their keys are in its key)
    binaries: tuple[tuple[str, Callable[[], str]], ...] = ()  # (name in context, where)
    pins: str = ""  # the file whose package=version pins the mirror must serve

    @property
    def archive(self) -> Path:
        return OUT / (re.sub(r"[^A-Za-z0-9.-]+", "_", self.name) + ".oci.tar")


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``argv``, its output kept; a failure raises with the command and its last lines."""
    result = subprocess.run(argv, text=True, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{' '.join(argv[:4])} … exited {result.returncode}:\n{tail}")
    return result  # type: ignore[no-any-return]


# buildah on this project's own store (never the host's).
BUILDAH = ["buildah", "--root", str(STORAGE / "root"), "--runroot", str(STORAGE / "run"),
           "--storage-driver", "overlay"]


def buildah(*args: str) -> subprocess.CompletedProcess[str]:
    """``buildah *args`` on our store; a failure raises BuildError."""
    return run([*BUILDAH, *args])


def digest(paths: Iterable[Path]) -> str:
    """sha256 over the files (or every file under the directories) and their names."""
    sha = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            sha.update(str(file.relative_to(ROOT) if file.is_relative_to(ROOT) else file).encode())
            sha.update(hashlib.sha256(file.read_bytes()).digest())
    return sha.hexdigest()


def apt_lists() -> str:
    """What the mirror serves today: its Release files' digest (a new point release or a
    security update is a new key for every image made from Debian's packages)."""
    return digest(sorted(Path("/var/lib/apt/lists").glob("*Release")))


def check_pins(text: str) -> None:
    """Every ``package=version`` pinned in ``text`` is one the mirror serves, else a
    message naming the package."""
    missing = []
    for package, version in sorted(set(re.findall(r"([a-z0-9][a-z0-9+.-]+)=(\d[^\s\\]*)", text))):
        shown = run(["apt-cache", "madison", package]).stdout
        served = {line.split("|")[1].strip() for line in shown.splitlines() if "|" in line}
        if version not in served:
            missing.append(f"{package}={version} (served: {', '.join(sorted(served)) or 'none'})")
    if missing:
        raise BuildError("pinned Debian packages the mirror does not serve: " + "; ".join(missing))


def import_rootfs(image: Image, tarball: Path, config: list[str]) -> None:
    """A root filesystem tarball committed as ``image`` with the given buildah config."""
    container = buildah("from", "--pull=never", "scratch").stdout.strip()
    try:
        buildah("add", container, str(tarball), "/")
        if config:
            buildah("config", *config, container)
        buildah("commit", "--quiet", "--rm", container, image.name)
    except BaseException:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)
        raise


def debian_slim(image: Image, work: Path) -> None:
    """Debian 12 minbase from the host's mirror (the apt the Dockerfile's RUN lines use)."""
    tarball = work / "rootfs.tar"
    run(["mmdebstrap", "--quiet", "--variant=minbase", "--aptopt",
         'Acquire::Check-Valid-Until "false"', "--customize-hook",
         'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
         SUITE, str(tarball), str(SOURCES)])
    import_rootfs(image, tarball, ["--cmd", "bash"])


def distroless(packages: str, python: bool) -> Callable[[Image, Path], None]:
    """A distroless stand-in: ``packages`` and their dependencies unpacked, no shell, no
    package manager, the nonroot user (65532) by default."""

    def build(image: Image, work: Path) -> None:
        tarball = work / "rootfs.tar"
        hook = (f'cd "$1" && rm -rf {DISTROLESS_REMOVE}'
                f' && printf "{DISTROLESS_USERS}" > etc/passwd'
                f' && printf "{DISTROLESS_GROUPS}" > etc/group'
                ' && mkdir -p home/nonroot tmp && chown 65532:65532 home/nonroot'
                ' && chmod 1777 tmp'
                # ca-certificates' postinst (not run) makes the bundle distroless ships.
                ' && mkdir -p etc/ssl/certs && find usr/share/ca-certificates -name "*.crt"'
                ' | sort | xargs cat > etc/ssl/certs/ca-certificates.crt')
        run(["mmdebstrap", "--quiet", "--variant=extract", f"--include={packages}",
             "--extract-hook", hook, SUITE, str(tarball), str(SOURCES)])
        config = ["--user", "65532:65532", "--workingdir", "/home/nonroot",
                  "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]
        if python:
            config += ["--entrypoint", '["/usr/bin/python3.11"]']
        import_rootfs(image, tarball, config)

    return build


def pause(image: Image, work: Path) -> None:
    """Kubernetes' pause.c at the control plane's release, compiled static, FROM scratch."""
    source = kubernetes_source() / "build" / "pause" / "linux" / "pause.c"
    run(["gcc", "-Os", "-static", "-o", str(work / "pause"), str(source)])
    run(["strip", str(work / "pause")])
    shutil.copy(IMAGES / "pause" / "Containerfile", work / "Containerfile")
    bud(image, work, work / "Containerfile")


def kubernetes_source() -> Path:
    """The kubernetes module at the pinned release, from the Go module proxy."""
    version = pinned("KUBERNETES_VERSION")
    found = run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                cwd=tempfile.gettempdir(), env={**os.environ, "GOFLAGS": "-mod=mod",
                                                 "GO111MODULE": "on"}).stdout
    return Path(json.loads(found)["Dir"])


def bud(image: Image, context: Path, file: Path, *args: str) -> None:
    """``buildah bud`` of ``file`` in ``context``: never pulls, host network for apt and pip."""
    buildah("bud", "--quiet", "--pull=never", "--network", "host", "--isolation", "chroot",
            "--layers", "-f", str(file), "-t", image.name, *args, str(context))


def ours(target: str | None) -> Callable[[Image, Path], None]:
    """Our Dockerfile as it is, at ``target`` (None: the default one). pip's CA bundle is a
    build secret: used by the RUN that installs, never in a layer."""

    def build(image: Image, work: Path) -> None:
        bundle = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
        args = ["--secret", f"id=pip-ca,src={bundle}"] if Path(bundle).is_file() else []
        if target:
            args += ["--target", target]
        bud(image, ROOT, ROOT / "Dockerfile", *args)

    return build


def store(folder: str) -> Callable[[Image, Path], None]:
    """images/<folder>/ with the image's binaries copied into its context."""

    def build(image: Image, work: Path) -> None:
        shutil.copytree(IMAGES / folder, work, dirs_exist_ok=True)
        for name, where in image.binaries:
            shutil.copy2(where(), work / name)
        bud(image, work, work / "Containerfile", "--build-arg", f"BASE={image.bases[0]}")

    return build


def _binary(program: str, key: str) -> Callable[[], str]:
    return lambda: cached_binary(program, key)


DEBIAN = "docker.io/library/debian:12.11-slim"
DISTROLESS_PYTHON = "gcr.io/distroless/python3-debian12:nonroot"
DISTROLESS_STATIC = "gcr.io/distroless/static-debian12:nonroot"
DISTROLESS_BASE = "gcr.io/distroless/base-debian12:nonroot"  # static's, and glibc
OURS = ("Dockerfile", "pyproject.toml", "constraints.txt", "README.md", "agent")


def catalogue() -> list[Image]:
    """Every image, each after the bases it is built from."""
    # The etcd versions the tests play (player/stores/etcd.py); Debian's 3.4 is linked
    # against glibc, the pinned builds are static.
    etcd = {etcd_tag(version): (functools.partial(etcd_binary, version),
                                DISTROLESS_STATIC if ETCD_VERSIONS[version] else DISTROLESS_BASE)
            for version in ETCD_VERSIONS}
    extract = ("extract", DISTROLESS_REMOVE, DISTROLESS_USERS)
    python = "python3,ca-certificates,tzdata,netbase"
    static = "ca-certificates,tzdata,netbase,base-files"
    base = f"{static},libc6,libssl3"
    return [
        Image(DEBIAN, debian_slim, words=("minbase",)),
        Image(DISTROLESS_PYTHON, distroless(python, True), words=(python, *extract)),
        Image(DISTROLESS_STATIC, distroless(static, False), words=(static, *extract)),
        Image(DISTROLESS_BASE, distroless(base, False), words=(base, *extract)),
        Image("registry.k8s.io/pause:3.10", pause, inputs=("images/pause",),
              words=(pinned("KUBERNETES_VERSION"),)),
        Image(f"docker.io/library/sts-agent:{AGENT_VERSION}", ours(None), inputs=OURS,
              bases=(DEBIAN, DISTROLESS_PYTHON), pins="Dockerfile"),
        Image(f"docker.io/library/sts-agent-galera:{AGENT_VERSION}", ours("galera-init"),
              inputs=OURS,
              bases=(DEBIAN,), pins="Dockerfile"),
        Image(f"docker.io/library/sts-agent-exec-galera:{AGENT_VERSION}", ours("exec-galera"),
              inputs=OURS, bases=(DEBIAN,), pins="Dockerfile"),
        Image("docker.io/rqlite/rqlite:" + pinned("RQLITE_VERSION").lstrip("v"), store("rqlite"),
              inputs=("images/rqlite",), bases=(DEBIAN,),
              binaries=(("rqlited", _binary("rqlited", "RQLITE_VERSION")),)),
        Image("docker.io/hashicorp/consul:" + pinned("CONSUL_VERSION").lstrip("v"),
              store("consul"), inputs=("images/consul",), bases=(DEBIAN,),
              binaries=(("consul", _binary("consul", "CONSUL_VERSION")),)),
        Image("docker.io/library/mariadb:10.11.10", store("mariadb"), inputs=("images/mariadb",),
              bases=(DEBIAN,), pins="images/mariadb/Containerfile"),
        *(Image(f"gcr.io/etcd-development/etcd:{version}", store("etcd"), inputs=("images/etcd",),
                bases=(base_image,), binaries=(("etcd", where),))
          for version, (where, base_image) in etcd.items()),
    ]


def key(image: Image, keys: dict[str, str]) -> str:
    """The cache key: the recipe and this script, its files, its binaries, its bases' keys,
    and the mirror's state when Debian's packages go in."""
    sha = hashlib.sha256()
    for word in (image.name, image.build.__qualname__, digest([Path(__file__)]),
                 digest(ROOT / p for p in image.inputs),
                 digest(Path(where()) for _, where in image.binaries),
                 *image.words, *(keys[base] for base in image.bases)):
        sha.update(word.encode() + b"\0")
    if image.bases or image.words:
        sha.update(apt_lists().encode())
    return sha.hexdigest()


def in_storage(name: str) -> bool:
    """Whether buildah's store has ``name``."""
    return subprocess.run([*BUILDAH, "inspect", "--type", "image", name],
                          capture_output=True, check=False).returncode == 0


def load(image: Image) -> None:
    """``image`` in buildah's store, for a FROM line: from its archive if the store lost it."""
    if not in_storage(image.name):
        pulled = buildah("pull", "--quiet", f"oci-archive:{image.archive}").stdout.split()[-1]
        buildah("tag", pulled, image.name)


def build_all(only: list[str], force: bool) -> list[tuple[str, str, float, int]]:
    """Build what is missing or changed (``only``: images whose name has one of these
    words, and their bases); (name, built or cached, seconds, bytes) per image."""
    OUT.mkdir(parents=True, exist_ok=True)
    images = catalogue()
    wanted = {i.name for i in images if not only or any(w in i.name for w in only)}
    for image in reversed(images):
        if image.name in wanted:
            wanted.update(image.bases)
    keys: dict[str, str] = {}
    report = []
    for image in images:
        keys[image.name] = key(image, keys)
        if image.name not in wanted:
            continue
        stamp = image.archive.with_suffix(".key")
        if (not force and image.archive.is_file() and stamp.is_file()
                and stamp.read_text() == keys[image.name]):
            report.append((image.name, "cached", 0.0, image.archive.stat().st_size))
            continue
        started = time.monotonic()
        print(f"images: building {image.name}", flush=True)
        if image.pins:
            check_pins((ROOT / image.pins).read_text())
        for base in image.bases:
            load(next(i for i in images if i.name == base))
        with tempfile.TemporaryDirectory(prefix="sts-agent-image-") as work:
            image.build(image, Path(work))
        partial = image.archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        buildah("push", "--quiet", image.name, f"oci-archive:{partial}:{image.name}")
        partial.replace(image.archive)
        stamp.write_text(keys[image.name])
        seconds = time.monotonic() - started
        report.append((image.name, "built", seconds, image.archive.stat().st_size))
        print(f"images: built {image.name} in {seconds:.1f} s", flush=True)
    report += publish([i for i in images if i.name in wanted], keys)
    if not only:  # archives of images no longer in the catalogue (a renamed tag)
        current = {i.archive.name for i in images}
        for stale in OUT.glob("*.oci.tar"):
            if stale.name not in current:
                stale.unlink()
                stale.with_suffix(".key").unlink(missing_ok=True)
    return report


def publish(images: list[Image], keys: dict[str, str]) -> list[tuple[str, str, float, int]]:
    """Push each image whose key the registry's storage does not hold yet, through a
    writable registry on loopback; (name, "pushed", seconds, bytes) per image pushed."""
    marks = REGISTRY / "published"
    todo = [i for i in images
            if not (marks / i.archive.with_suffix(".key").name).is_file()
            or (marks / i.archive.with_suffix(".key").name).read_text() != keys[i.name]]
    if not todo:
        return []
    marks.mkdir(parents=True, exist_ok=True)
    report = []
    with tempfile.TemporaryDirectory(prefix="sts-agent-registry-") as work, \
            Registry(Path(work), "127.0.0.1", port=free_port(), writable=True) as registry:
        for image in todo:
            started = time.monotonic()
            load(image)
            buildah("push", "--quiet", "--tls-verify=false", image.name,
                    f"docker://{registry.endpoint}/{repository_path(image.name)}")
            (marks / image.archive.with_suffix(".key").name).write_text(keys[image.name])
            report.append((image.name, "pushed", time.monotonic() - started,
                           image.archive.stat().st_size))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="build only images whose name has one of these")
    parser.add_argument("--force", action="store_true", help="build even what is cached")
    options = parser.parse_args()
    started = time.monotonic()
    try:
        report = build_all(options.only, options.force)
        nodeimages.store()  # what a real node starts from: made once per content
    except BuildError as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    for name, what, seconds, size in report:
        print(f"{name:55} {what:7} {seconds:6.1f} s {size / 1e6:7.1f} MB")
    print(f"images: {len(report)} images in {time.monotonic() - started:.1f} s ({OUT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
