#!/bin/sh
# sequence.sh: 1 when this volume holds a member's data, 0 when it holds none. Raft's own
# election picks the most complete log among the members that start, so after an outage the
# vote only has to keep a volume without data from founding a cluster beside the others.
# Exit codes: 0 printed; 1 etcd is running (its data is in use); 2 no usable settings.
set -eu
. "$(dirname "$0")/common.sh"
if running; then
    echo "$hook: etcd is running (pid $pid)" >&2
    exit 1
fi
if has_data; then echo 1; else echo 0; fi
