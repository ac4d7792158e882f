#!/bin/sh
# sequence.sh: print this node's last committed Galera seqno (one unsigned integer) for the
# agent's vote on which node bootstraps: 0 for a volume never initialised (no
# $datadir/mysql), grastate.dat's seqno when it is >= 0, else (a crash left -1, or there is
# no grastate.dat) the position `mariadbd --wsrep-recover` finds in InnoDB (a valid uuid
# with seqno -1 prints 0). Never runs while mariadbd does.
# Exit codes: 0 printed; 1 cannot tell (mariadbd running, unreadable grastate.dat, recovery
# found no position), the cause on stderr; 2 no usable config.
set -eu
. "$(dirname "$0")/common.sh"

if running; then
    echo "$hook: mariadbd is running (pid $pid, $pid_file): its seqno is not on disk" >&2
    exit 1
fi
if [ ! -d "$datadir/mysql" ]; then
    echo 0
    exit 0
fi
seqno=$(grastate_seqno)
case "$seqno" in
    "" | -1) ;;  # crashed (or never wrote it): recover below
    *[!0-9]*)
        echo "$hook: $datadir/grastate.dat holds no seqno I understand (\"$seqno\")" >&2
        exit 1 ;;
    *) echo "$seqno"; exit 0 ;;
esac
prepare_dirs
recover_position || exit 1
if [ "$recovered_seqno" -lt 0 ]; then
    echo 0  # a cluster's uuid but no transaction committed
else
    echo "$recovered_seqno"
fi
