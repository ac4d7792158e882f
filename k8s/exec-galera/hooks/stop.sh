#!/bin/sh
# stop.sh: shut mariadbd down cleanly (`mariadb-admin shutdown`; SIGTERM, the same clean
# shutdown, when it does not answer), then wait until the pid file's process is gone (up to
# $GALERA_STOP_TIMEOUT seconds, default 45), so its grastate.dat holds its seqno. One still
# running then (a shutdown can hang, e.g. after a failed JOIN) is killed, within the hook's
# 60 s: a start refuses while it runs, and InnoDB recovers at the next start.
# Exit codes: 0 stopped, or was not running; 1 still running after the wait (then killed);
# 2 no usable config.
set -eu
. "$(dirname "$0")/common.sh"

if ! running; then
    echo "$hook: mariadbd is not running"
    exit 0
fi
if ! mariadb-admin --defaults-file="$GALERA_CNF" --connect-timeout=5 shutdown >/dev/null 2>&1
then
    echo "$hook: mariadb-admin shutdown failed; sending SIGTERM to pid $pid" >&2
    kill -TERM "$pid" 2>/dev/null || true
fi
limit=${GALERA_STOP_TIMEOUT:-45}
waited=0
while alive "$pid"; do
    if [ "$waited" -ge $((limit * 5)) ]; then
        echo "$hook: mariadbd (pid $pid) still running after ${limit}s: killing it" >&2
        log_tail "$daemon_log"
        kill -KILL "$pid" 2>/dev/null || true
        waited=0
        while alive "$pid" && [ "$waited" -lt 50 ]; do
            sleep 0.2
            waited=$((waited + 1))
        done
        exit 1
    fi
    sleep 0.2
    waited=$((waited + 1))
done
echo "$hook: mariadbd (pid $pid) stopped"
