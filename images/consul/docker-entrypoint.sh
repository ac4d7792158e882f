#!/bin/sh
# hashicorp/consul's entrypoint, for what the examples use: flags are given to `consul agent`,
# a consul subcommand runs as `consul <subcommand>`, anything else runs as it is.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- consul agent -data-dir=/consul/data -config-dir=/consul/config "$@"
elif [ "${1:-}" = agent ] || consul --help 2>&1 | grep -q "^    ${1:-none} "; then
    set -- consul "$@"
fi
exec "$@"
