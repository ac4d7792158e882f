#!/bin/sh
# check.sh: this node's role for the agent, from mariadbd's wsrep status
# (SHOW GLOBAL STATUS LIKE 'wsrep\_%').
# Exit codes: 8 primary (Primary component and Synced: every synced Galera node takes
# writes; a one-line summary on stdout); 0 secondary (Primary component, still joining,
# joined or donor: running, catching up); 7 not running (no pid file, or its process
# gone); 1 anything else (a mariadbd that runs but does not answer ping, a non-Primary
# component, the status query failing), the cause on stderr; 2 no usable config.
# A mariadbd that runs without answering is failed, not stopped: one whose shutdown hung
# after a failed join never ends by itself, and start.sh refuses while it runs; as failed,
# the agent stops it by stop.sh (which kills it after its wait) and joins it again.
set -eu
. "$(dirname "$0")/common.sh"

if ! running; then
    echo "$hook: mariadbd is not running ($pid_file)" >&2
    exit 7
fi
if ! mariadb-admin --defaults-file="$GALERA_CNF" --connect-timeout=2 ping >/dev/null 2>&1; then
    echo "$hook: mariadbd (pid $pid) runs but does not answer ping" >&2
    exit 1
fi
if ! status=$(mariadb --defaults-file="$GALERA_CNF" --connect-timeout=5 -N -B \
    -e "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'" 2>&1); then
    echo "$hook: the wsrep status query failed: $status" >&2
    exit 1
fi
value() {
    printf '%s\n' "$status" | awk -F '\t' -v name="$1" '$1 == name { print $2; exit }'
}
cluster_status=$(value wsrep_cluster_status)
local_state=$(value wsrep_local_state)
summary="wsrep_cluster_status=$cluster_status wsrep_local_state=$local_state"
summary="$summary ($(value wsrep_local_state_comment))"
summary="$summary wsrep_cluster_size=$(value wsrep_cluster_size)"
summary="$summary wsrep_last_committed=$(value wsrep_last_committed)"
if [ "$cluster_status" != Primary ]; then
    echo "$hook: not in a Primary component: $summary" >&2
    exit 1
fi
case "$local_state" in
    4) echo "$summary"; exit 8 ;;
    1 | 2 | 3) echo "$summary"; exit 0 ;;
    *) echo "$hook: in the Primary component but in no state I know: $summary" >&2; exit 1 ;;
esac
