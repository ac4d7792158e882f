#!/bin/sh
# start.sh PRIMARY...: join the cluster of the current primaries (host names or IPs, no
# port; Galera's group port 4567 is added): mariadbd starts in the background, in this
# hook's process group, with --wsrep-cluster-address=gcomm://<each>:4567, and the hook
# waits until it answers. The data dir is not initialised here: a joiner with no state
# gets a full copy (SST) from its donor before it answers; after a crash the position
# InnoDB holds is recovered and passed as --wsrep-start-position.
# Exit codes: 0 mariadbd answers; 1 it could not start (already running, or it died: its
# log's last lines on stderr); 2 no primaries given, or no usable config.
set -eu
if [ $# -eq 0 ]; then
    echo "usage: ${0##*/} PRIMARY_ADDRESS... (the current primaries to join)" >&2
    exit 2
fi
. "$(dirname "$0")/common.sh"

address=""
for peer in "$@"; do
    case "$peer" in
        "") continue ;;
        *:*) peer="[$peer]" ;;  # IPv6
    esac
    address="$address${address:+,}$peer:4567"
done
if [ -z "$address" ]; then
    echo "usage: ${0##*/} PRIMARY_ADDRESS... (only empty addresses given)" >&2
    exit 2
fi
if running; then
    echo "$hook: mariadbd is already running (pid $pid)" >&2
    exit 1
fi
prepare_dirs
# After a crash, the position InnoDB holds, so the donor may send only what is missing
# (IST); without one the joiner still gets a full copy.
if ! start_position; then
    echo "$hook: joining without a position: the donor sends a full copy" >&2
fi
# shellcheck disable=SC2086 # start_args: one option or none
start_daemon --wsrep-cluster-address="gcomm://$address" $start_args
wait_answering "$daemon_pid" "$daemon_log"
echo "$hook: mariadbd (pid $daemon_pid) joined gcomm://$address and answers"
