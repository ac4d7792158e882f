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

build_rqlited
build_kustomize
