#!/bin/sh
# rqlite/rqlite's entrypoint, for what the examples use: a command that is not a flag runs
# as it is (k8s/rqlite's `rqlited <args>`); flags, or no argument, run rqlited with the
# image's defaults (node id from the host name, data under /rqlite/file/data).
set -e
case "${1:-}" in
    "" | rqlite | -*)
        [ "${1:-}" = rqlite ] && shift
        node_id="${NODE_ID:-$(hostname)}"
        http_addr="${HTTP_ADDR:-0.0.0.0:4001}"
        raft_addr="${RAFT_ADDR:-0.0.0.0:4002}"
        exec rqlited -node-id "$node_id" -http-addr "$http_addr" -raft-addr "$raft_addr" \
            "$@" "${DATA_DIR:-/rqlite/file/data}"
        ;;
esac
exec "$@"
