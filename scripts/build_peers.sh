#!/usr/bin/env bash
# Build the pinned store binaries the tests need from the Go module proxy, into a cache
# outside the repository; a binary already built at the pinned version is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/peers.env

CACHE="${STS_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sts-agent}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

build_rqlited() {
    local out="$BIN/rqlited-$RQLITE_VERSION"
    if [ -x "$out" ]; then
        return
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "build_peers: go is not installed; cannot build rqlited" >&2
        return 1
    fi
    echo "build_peers: building rqlited $RQLITE_VERSION (go build, a few minutes)"
    local work
    work="$(mktemp -d)"
    # A wrapper module: rqlite's own go.mod replaces two dependencies (go-sqlite3 by
    # rqlite's fork, which has the pre-update hook and checkpoint controls rqlite uses),
    # and replace directives only apply in the main module, so the wrapper repeats them.
    cat > "$work/go.mod" <<GOMOD
module sts-agent.local/peers/rqlited

go 1.22.7

require github.com/rqlite/rqlite/v8 $RQLITE_VERSION

replace (
	github.com/armon/go-metrics => github.com/hashicorp/go-metrics v0.5.1
	github.com/mattn/go-sqlite3 => github.com/rqlite/go-sqlite3 $RQLITE_SQLITE3_VERSION
)
GOMOD
    cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/rqlite/rqlite/v8/cmd/rqlited"
GO
    (
        cd "$work"
        export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=1
        go mod tidy >/dev/null
        # The version rqlite's release builds stamp in (/status build.version), else "8".
        go build -trimpath -ldflags "-X github.com/rqlite/rqlite/v8/cmd.Version=$RQLITE_VERSION" \
            -o "$out.tmp" github.com/rqlite/rqlite/v8/cmd/rqlited
    )
    mv "$out.tmp" "$out"
    rm -rf "$work"
    echo "build_peers: $out"
}

go_install() {
    # <program> <package> <version>: `go install <package>@<version>` into the cache as
    # <program>-<version>, once.
    local program="$1" package="$2" version="$3"
    local out="$BIN/$program-$version"
    if [ -x "$out" ]; then
        return
    fi
    echo "build_peers: building $program $version (go install)"
    local work
    work="$(mktemp -d)"
    (
        export GOTOOLCHAIN=local GOBIN="$work" CGO_ENABLED=0
        go install -trimpath "$package@$version"
    )
    mv "$work/$program" "$out"
    rm -rf "$work"
    echo "build_peers: $out"
}

build_consul() {
    local out="$BIN/consul-$CONSUL_VERSION"
    if [ -x "$out" ]; then
        return
    fi
    echo "build_peers: building consul $CONSUL_VERSION (go build, about 5 minutes cold)"
    local work
    work="$(mktemp -d)"
    # A wrapper module: Consul's go.mod replaces its submodules with local directories
    # and excludes two go-msgpack versions, and both only apply in the main module. The
    # submodule versions are ones the module proxy and checksum database both serve.
    cat > "$work/go.mod" <<GOMOD
module sts-agent.local/peers/consul

go 1.25.5

exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)

require (
	github.com/hashicorp/consul $CONSUL_VERSION
	github.com/hashicorp/consul/api $CONSUL_API_VERSION
	github.com/hashicorp/consul/envoyextensions $CONSUL_ENVOYEXTENSIONS_VERSION
	github.com/hashicorp/consul/proto-public $CONSUL_PROTO_PUBLIC_VERSION
	github.com/hashicorp/consul/sdk $CONSUL_SDK_VERSION
	github.com/hashicorp/consul/troubleshoot $CONSUL_TROUBLESHOOT_VERSION
)
GOMOD
    cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/consul"
GO
    (
        cd "$work"
        export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=https://proxy.golang.org
        go mod tidy >/dev/null
        go build -trimpath -o "$out.tmp" github.com/hashicorp/consul
    )
    mv "$out.tmp" "$out"
    rm -rf "$work"
    echo "build_peers: $out"
}

build_kubernetes() {
    # The real control plane of the e2e tier and the demo, the real node's kubelet, and a
    # kubectl of the same release (the installed one may be outside the supported skew).
    local programs=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
    local missing=()
    for program in "${programs[@]}"; do
        [ -x "$BIN/$program-$KUBERNETES_VERSION" ] || missing+=("$program")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    echo "build_peers: building ${missing[*]} $KUBERNETES_VERSION (go build, about 6 minutes cold)"
    local work minor staging
    work="$(mktemp -d)"
    minor="${KUBERNETES_VERSION#v1.}"
    minor="${minor%%.*}"
    staging="v0.${KUBERNETES_VERSION#v1.}"
    (
        cd "$work"
        export GOTOOLCHAIN=local GOFLAGS=-mod=mod
        # kubernetes' go.mod requires its staging modules (k8s.io/api, client-go, ...) at
        # v0.0.0 and replaces them with local directories; replace directives only apply in
        # the main module, so this wrapper points each at the release's tagged version.
        local gomod
        gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
            | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
        {
            echo "module sts-agent.local/peers/kubernetes"
            echo
            grep -E '^go [0-9.]+$' "$gomod"
            # A dependency's godebug settings are ignored: copy kubernetes' own.
            sed -n '/^godebug /p; /^godebug (/,/^)/p' "$gomod"
            echo
            echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
            echo
            echo "replace ("
            sed -n 's/^[[:space:]]*\(k8s\.io\/[A-Za-z0-9._/-]*\) v0\.0\.0$/\1/p' "$gomod" \
                | sort -u | while read -r module; do
                    printf '\t%s => %s %s\n' "$module" "$module" "$staging"
                done
            echo ")"
        } > go.mod
        cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)
GO
        go mod tidy >/dev/null
        local version="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
        version+=" -X k8s.io/component-base/version.gitMajor=1"
        version+=" -X k8s.io/component-base/version.gitMinor=$minor"
        version+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
        version+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
        version+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
        for program in "${missing[@]}"; do
            CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $version" \
                -o "$BIN/$program-$KUBERNETES_VERSION.tmp" "k8s.io/kubernetes/cmd/$program"
            mv "$BIN/$program-$KUBERNETES_VERSION.tmp" "$BIN/$program-$KUBERNETES_VERSION"
            echo "build_peers: $BIN/$program-$KUBERNETES_VERSION"
        done
    )
    rm -rf "$work"
}

build_etcd() {
    # etcd 3.5 and 3.6, the versions users run (Debian's etcd-server is 3.4).
    local version="$1"
    local out="$BIN/etcd-$version"
    if [ -x "$out" ]; then
        return
    fi
    echo "build_peers: building etcd $version (go build)"
    local work
    work="$(mktemp -d)"
    # A wrapper module: etcd's server module replaces its sibling modules (api, client,
    # pkg) with local directories, which only applies in the main module, so the
    # wrapper requires each at the same release.
    cat > "$work/go.mod" <<GOMOD
module sts-agent.local/peers/etcd

go 1.24

require (
	go.etcd.io/etcd/api/v3 $version
	go.etcd.io/etcd/client/pkg/v3 $version
	go.etcd.io/etcd/client/v3 $version
	go.etcd.io/etcd/pkg/v3 $version
	go.etcd.io/etcd/server/v3 $version
)
GOMOD
    (
        cd "$work"
        # -mod=mod: the build itself resolves what the server needs (a main package
        # cannot be imported from a tools.go for `go mod tidy`).
        export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
        go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3
    )
    mv "$out.tmp" "$out"
    rm -rf "$work"
    echo "build_peers: $out"
}

build_checker() {
    # Our linearizability checker (checker/, on Porcupine): named by Porcupine's pin and a
    # hash of its sources, so an edit of the checker builds a new one.
    local digest out
    if [ ! -f checker/go.mod ]; then
        # images/test-stores copies only this script and peers.env: it builds stores only.
        return
    fi
    # The digest of go.mod, go.sum and the .go files in byte order (player/peers.py agrees).
    digest="$(cd checker && { cat go.mod go.sum; printf '%s\n' *.go | LC_ALL=C sort | xargs cat; } \
        | sha256sum | cut -c1-12)"
    out="$BIN/porcupine-checker-$PORCUPINE_VERSION-$digest"
    if [ -x "$out" ]; then
        return
    fi
    if ! grep -q "^require github.com/anishathalye/porcupine $PORCUPINE_VERSION\$" checker/go.mod; then
        echo "build_peers: checker/go.mod does not require porcupine $PORCUPINE_VERSION (scripts/peers.env)" >&2
        return 1
    fi
    echo "build_peers: building the linearizability checker (porcupine $PORCUPINE_VERSION)"
    (
        cd checker
        # -mod=readonly: go.sum is the pin; -buildvcs=false: the repository's state is no
        # input (the digest is).
        export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
        go build -trimpath -buildvcs=false -o "$out.tmp" .
    )
    mv "$out.tmp" "$out"
    echo "build_peers: $out"
}

build_checker
build_rqlited
# kustomize renders the k8s/ examples for validation and for the StatefulSet player.
go_install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
# Helm renders, lints and installs charts/sts-agent (about 1.5 minutes cold).
go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
# promtool checks and unit-tests the chart's PrometheusRule (about 4 minutes cold).
go_install promtool github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION"
build_consul
build_kubernetes
# The cluster DNS of the real node: CoreDNS's kubernetes plugin answers the headless
# Services' records, pod names and search domains from the API, as in a cluster (about
# 2 minutes cold).
go_install coredns github.com/coredns/coredns "$COREDNS_VERSION"
build_etcd "$ETCD_35_VERSION"
build_etcd "$ETCD_36_VERSION"
