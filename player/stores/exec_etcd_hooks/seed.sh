#!/bin/sh
# seed.sh: start this member first: a new one-member cluster on an empty volume, or the
# member its data says (after an outage; the others start once it runs).
# Exit codes: 0 etcd answers; 1 it is already running, or exited (the log's end on stderr).
set -eu
. "$(dirname "$0")/common.sh"
if running; then
    echo "$hook: etcd is already running (pid $pid)" >&2
    exit 1
fi
start_etcd "$name=$peer_url" new
echo "$hook: etcd $name answers at $client_url"
