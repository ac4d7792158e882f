# common.sh: sourced by the etcd exec hooks, never run. etcd driven only through its own
# binary and etcdctl (v3 API), as RSS-style hooks: no agent code, no etcd client library.
# Environment (the pod's, or the hook's own): HOOK_NAME (default $POD_NAME), HOOK_HOST
# (the address peers reach, default $POD_IP), HOOK_DATA_DIR, HOOK_RUN_DIR (pid file and
# log), HOOK_ETCD and HOOK_ETCDCTL (default etcd and etcdctl on PATH), HOOK_TOKEN,
# HOOK_ETCD_FLAGS (more flags for etcd, e.g. election timing), HOOK_CLIENT_PORT (2379),
# HOOK_PEER_PORT (2380).
# Not ETCD_*: etcd reads those as its own flags (and refuses one that a flag repeats).
# Exit codes (of the sourcing hook, at once): 2 when a required setting is missing.
hook=${0##*/}
hook=${hook%.sh}
name=${HOOK_NAME:-${POD_NAME:-}}
host=${HOOK_HOST:-${POD_IP:-}}
data_dir=${HOOK_DATA_DIR:-}
run_dir=${HOOK_RUN_DIR:-}
for setting in name host data_dir run_dir; do
    eval "value=\$$setting"
    if [ -z "$value" ]; then
        echo "$hook: no $setting (set HOOK_NAME/POD_NAME, HOOK_HOST/POD_IP, HOOK_DATA_DIR, HOOK_RUN_DIR)" >&2
        exit 2
    fi
done
client_port=${HOOK_CLIENT_PORT:-2379}
peer_port=${HOOK_PEER_PORT:-2380}
etcd_bin=${HOOK_ETCD:-etcd}
etcdctl_bin=${HOOK_ETCDCTL:-etcdctl}
case "$host" in *:*) url_host="[$host]" ;; *) url_host=$host ;; esac
client_url=http://$url_host:$client_port
peer_url=http://$url_host:$peer_port
pid_file=$run_dir/etcd.pid
log=$run_dir/etcd.log
export ETCDCTL_API=3

# ctl ENDPOINTS ARGS...: etcdctl against ENDPOINTS (comma-separated), bounded in time.
ctl() {
    ctl_endpoints=$1
    shift
    "$etcdctl_bin" --endpoints="$ctl_endpoints" --dial-timeout=2s --command-timeout=5s "$@"
}

# endpoints HOST...: the client URLs of the primaries the agent appended.
endpoints() {
    list=""
    for primary in "$@"; do
        case "$primary" in *:*) primary="[$primary]" ;; esac
        list="${list:+$list,}http://$primary:$client_port"
    done
    printf '%s' "$list"
}

# running: etcd runs as the pid file says (sets pid); a zombie or another program is not.
running() {
    pid=""
    [ -f "$pid_file" ] || return 1
    pid=$(tr -cd 0-9 <"$pid_file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    state=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${state##*) }
    [ "${state%% *}" != Z ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = etcd ]
}

# has_data: this volume holds a member's data.
has_data() {
    [ -d "$data_dir/member" ]
}

# start_etcd CLUSTER STATE: etcd in the background (this hook's process group, its output
# in the log, not the hook's pipes), then wait until it answers a status request (which
# it does without a quorum). With data, etcd ignores CLUSTER and STATE.
start_etcd() {
    mkdir -p "$data_dir" "$run_dir"
    # shellcheck disable=SC2086 # HOOK_ETCD_FLAGS: several flags
    "$etcd_bin" --name "$name" --data-dir "$data_dir" \
        --listen-client-urls "$client_url" --advertise-client-urls "$client_url" \
        --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
        --initial-cluster "$1" --initial-cluster-state "$2" \
        --initial-cluster-token "${HOOK_TOKEN:-sts-agent-exec}" ${HOOK_ETCD_FLAGS:-} \
        </dev/null >>"$log" 2>&1 &
    echo $! >"$pid_file"
    started=$!
    until ctl "$client_url" endpoint status >/dev/null 2>&1; do
        if ! kill -0 "$started" 2>/dev/null; then
            echo "$hook: etcd exited before it answered; the end of $log:" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        sleep 0.2
    done
}
