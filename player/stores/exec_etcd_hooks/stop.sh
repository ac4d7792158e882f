#!/bin/sh
# stop.sh PRIMARY...: this member leaves the cluster for good (a scale-down): it is removed
# through the cluster (the primaries appended, else itself), then etcd stops. Removing a
# member that is already gone is success.
# Exit codes: 0 removed and stopped; 1 the removal was refused or etcd did not stop.
set -eu
. "$(dirname "$0")/common.sh"
through=$client_url
others=$(endpoints "$@")
[ -n "$others" ] && through="$others,$client_url"
members=$(ctl "$through" member list) || {
    echo "$hook: cannot list the members through $through" >&2
    exit 1
}
mine=$(printf '%s\n' "$members" | awk -F', ' -v url="$peer_url" '$4 == url { print $1 }')
if [ -n "$mine" ]; then
    ctl "$through" member remove "$mine" >/dev/null
    echo "$hook: removed member $mine ($peer_url)"
fi
if running; then
    kill -TERM "$pid" 2>/dev/null || true
    tries=0
    while running; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ]; then
            echo "$hook: etcd (pid $pid) did not stop within 20 s" >&2
            exit 1
        fi
        sleep 0.2
    done
fi
echo "$hook: etcd $name stopped"
