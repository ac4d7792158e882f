#!/usr/bin/env bash
# Prepare a fresh machine for the demo and the tests: Debian packages, virtualenv, Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# Galera: MariaDB 10.11 and galera-4 from Debian, rsync for its state transfers (mariadbd is
# run by the tests and the player, never by the packaged service); tini, the exec-galera
# image's PID 1. The images (make images): mmdebstrap and buildah build them, gcc the pause
# binary; containerd and runc run them in the image tests and on the real node, whose pods
# the bridge and host-local CNI plugins connect and which pulls them from docker-registry.
DEBIAN_PACKAGES=(dnsmasq-base etcd-server etcd-client wrk iproute2 openssl mariadb-server galera-4 rsync
    tini mmdebstrap buildah gcc containerd runc containernetworking-plugins docker-registry)
BINARIES=(dnsmasq etcd etcdctl wrk ip openssl mariadbd /usr/lib/galera/libgalera_smm.so rsync
    tini mmdebstrap buildah gcc containerd runc /usr/lib/cni/bridge docker-registry)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for i in "${!BINARIES[@]}"; do
    if ! command -v "${BINARIES[$i]}" >/dev/null 2>&1 && [ ! -x "/usr/sbin/${BINARIES[$i]}" ] \
            && [ ! -e "${BINARIES[$i]}" ]; then
        missing+=("${DEBIAN_PACKAGES[$i]}")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    # No packaged service may start (mariadb-server's would take port 3306 and /var/lib/mysql):
    # policy-rc.d refuses every start while the packages install.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        made_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [ -n "$made_policy" ]; then as_root rm -f "$policy"; fi
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python >= 3.11 needed, found {sys.version.split()[0]}")
PY

stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "setup: installing Python packages"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev]'
    touch "$stamp"
fi

lint_stamp=".venv-lint/.installed"
if [ ! -f "$lint_stamp" ] || [ constraints-lint.txt -nt "$lint_stamp" ]; then
    echo "setup: installing the security scanner (checkov) into .venv-lint"
    [ -x .venv-lint/bin/python ] || "$PYTHON" -m venv .venv-lint
    .venv-lint/bin/python -m pip install -q --upgrade pip
    .venv-lint/bin/python -m pip install -q -c constraints-lint.txt checkov
    touch "$lint_stamp"
fi

bash scripts/build_peers.sh
