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
    # A wrapper module: rqlite's own go.mod replaces two dependencies, and replace
    # directives only apply in the main module, so the wrapper repeats them.
    cat > "$work/go.mod" <<GOMOD
module sts-agent.local/peers/rqlited

go 1.22.7

require github.com/rqlite/rqlite/v8 $RQLITE_VERSION

replace (
	github.com/armon/go-metrics => github.com/hashicorp/go-metrics v0.5.1
	golang.org/x/text => golang.org/x/text v0.3.8
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
        go build -trimpath -o "$out.tmp" github.com/rqlite/rqlite/v8/cmd/rqlited
    )
    mv "$out.tmp" "$out"
    rm -rf "$work"
    echo "build_peers: $out"
}

build_kustomize() {
    # kustomize renders the k8s/ examples for validation and for the StatefulSet player.
    local out="$BIN/kustomize-$KUSTOMIZE_VERSION"
    if [ -x "$out" ]; then
        return
    fi
    echo "build_peers: building kustomize $KUSTOMIZE_VERSION (go install)"
    local work
    work="$(mktemp -d)"
    (
        export GOTOOLCHAIN=local GOBIN="$work" CGO_ENABLED=0
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    )
    mv "$work/kustomize" "$out"
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

build_rqlited
build_kustomize
build_consul
