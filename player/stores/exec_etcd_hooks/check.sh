#!/bin/sh
# check.sh: RSS's status. 7 when etcd is not running; 8 when it answers as a voting member
# (whether the cluster has a leader is readiness's business, through the members hook);
# 0 as a learner; 1 when it runs but does not answer.
set -eu
. "$(dirname "$0")/common.sh"
running || exit 7
if ! status=$(ctl "$client_url" endpoint status -w json 2>&1); then
    echo "$hook: etcd (pid $pid) does not answer: $status" >&2
    exit 1
fi
case "$status" in *'"isLearner":true'*) exit 0 ;; esac
exit 8
