#!/bin/sh
# start.sh PRIMARY...: start this member beside the running primaries (their addresses are
# appended by the agent). With data it starts as the member its data says, unless the
# cluster no longer lists it (removed on a scale-down, now back): then that data is moved
# aside (member.removed-<time>) and it joins afresh. Without data it is added as a member
# (a stale member of its name, from a wiped volume, is removed first) and joins.
# Exit codes: 0 etcd answers; 1 a membership change was refused or etcd exited; 2 usage.
set -eu
. "$(dirname "$0")/common.sh"
if [ $# -eq 0 ]; then
    echo "usage: $hook PRIMARY..." >&2
    exit 2
fi
if running; then
    echo "$hook: etcd is already running (pid $pid)" >&2
    exit 1
fi
cluster=$(endpoints "$@")
members=$(ctl "$cluster" member list) || {
    echo "$hook: cannot list the members through $cluster" >&2
    exit 1
}
# member list lines: ID, status, name, peer URLs, client URLs, is learner
mine=$(printf '%s\n' "$members" | awk -F', ' -v url="$peer_url" '$4 == url { print $1 }')
if has_data; then
    if [ -n "$mine" ]; then
        start_etcd "$name=$peer_url" existing
        echo "$hook: etcd $name restarted from its data"
        exit 0
    fi
    aside="$data_dir/../${data_dir##*/}.removed-$(date -u +%Y%m%dT%H%M%SZ)"
    echo "$hook: the cluster no longer lists $peer_url: moving its data aside to $aside"
    mv "$data_dir" "$aside"
fi
if [ -n "$mine" ]; then
    echo "$hook: removing stale member $mine ($peer_url) before adding it again"
    ctl "$cluster" member remove "$mine" >/dev/null
fi
added=$(ctl "$cluster" member add "$name" --peer-urls="$peer_url") || {
    echo "$hook: member add refused: $added" >&2
    exit 1
}
initial=$(printf '%s\n' "$added" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p')
start_etcd "$initial" existing
echo "$hook: etcd $name joined through $cluster"
