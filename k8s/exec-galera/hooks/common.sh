# common.sh: sourced by the Galera exec hooks (`. "$(dirname "$0")/common.sh"`), never run.
# Reads mariadbd's settings from $GALERA_CNF (default /etc/mysql/conf.d/galera.cnf, the
# config `sts-agent init` renders from templates/galera.cnf.j2) and defines the helpers the
# hooks share: running, exists, alive, prepare_dirs, grastate_seqno, recover_position,
# start_position, start_daemon, wait_answering, log_tail.
# Sets: hook, datadir, socket, pid_file, tmpdir, run_dir, daemon_log, db_user, db_group,
# user_option, socket_user.
# Exit codes (of the sourcing hook, at once): 2 when the config is missing or names no
# absolute datadir, socket or pid-file.
hook=${0##*/}
hook=${hook%.sh}
GALERA_CNF=${GALERA_CNF:-/etc/mysql/conf.d/galera.cnf}
if [ ! -f "$GALERA_CNF" ]; then
    echo "$hook: no mariadbd config at $GALERA_CNF (set GALERA_CNF)" >&2
    exit 2
fi

# The settings as mariadbd reads them (its option groups of the file and its !includes):
# one --name=value a line, the last one of a name winning.
if ! settings=$(my_print_defaults --defaults-file="$GALERA_CNF" --mysqld); then
    echo "$hook: my_print_defaults cannot read $GALERA_CNF" >&2
    exit 2
fi
datadir="" socket="" pid_file="" tmpdir="" log_error="" db_user=""
while IFS= read -r line; do
    value=${line#*=}
    case "$line" in
        --datadir=*) datadir=$value ;;
        --socket=*) socket=$value ;;
        --pid-file=* | --pid_file=*) pid_file=$value ;;
        --tmpdir=*) tmpdir=$value ;;
        --log-error=* | --log_error=*) log_error=$value ;;
        --user=*) db_user=$value ;;
    esac
done <<EOF
$settings
EOF
datadir=${datadir%/}
setting_error() {
    echo "$hook: $GALERA_CNF names no absolute $1 ($2)" >&2
    exit 2
}
case "$datadir" in /?*) ;; *) setting_error datadir "$datadir" ;; esac
case "$socket" in /?*/*) ;; *) setting_error socket "$socket" ;; esac
case "$pid_file" in /?*/*) ;; *) setting_error pid-file "$pid_file" ;; esac
run_dir=${pid_file%/*}
# Where mariadbd's stdout and stderr go (appended): its own error log, relative to datadir
# as mariadbd takes it, or a file in the run dir when the config names none.
case "$log_error" in
    /*) daemon_log=$log_error ;;
    ?*) daemon_log=$datadir/$log_error ;;
    *) daemon_log=$run_dir/mariadbd.log ;;
esac
# The user mariadbd switches to (the config's `user`), owner of what it writes.
db_user=${db_user:-mysql}
db_group=$(id -gn "$db_user" 2>/dev/null || printf '%s' "$db_user")
# --user for mariadb-install-db and mariadbd, as root only: run as the pod's runAsUser,
# mariadb-install-db would try to chown the data dir (the kubelet's, owned by root with
# fsGroup) to that user and fail; mariadbd runs as the caller anyway. socket_user: the OS
# user mariadbd runs as, whom its socket authenticates as a database user of that name.
user_option="" socket_user=$(id -un 2>/dev/null || id -u)
if [ "$(id -u)" = 0 ]; then user_option="--user=$db_user" socket_user=$db_user; fi
case "$tmpdir" in /?*) export TMPDIR="$tmpdir" ;; esac  # the root filesystem is read-only

# exists PID: the process exists and has not exited (a zombie, left by an init that does
# not reap the orphaned daemon or not yet waited for by this hook, is gone).
exists() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    proc_stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    proc_stat=${proc_stat##*) }
    [ "${proc_stat%% *}" != Z ]
}

# alive PID: the process exists and, where /proc tells, it is a mariadbd: a pid file left
# by a crash may name a pid that a new container gave to another program.
alive() {
    exists "$1" || return 1
    [ -r "/proc/$1/comm" ] || return 0
    proc_comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
    case "$proc_comm" in mariadbd | mysqld) return 0 ;; *) return 1 ;; esac
}

# running: mariadbd runs as the pid file says (sets pid); 1 when no pid file or it is gone.
running() {
    pid=""
    [ -f "$pid_file" ] || return 1
    pid=$(tr -cd 0-9 <"$pid_file" 2>/dev/null) || return 1
    [ -n "$pid" ] || return 1
    alive "$pid"
}

# prepare_dirs: data and run dirs (socket, pid file, error log) made and, run as root,
# owned by the database user, and tmpdir world-writable: what the pod's fsGroup gives a
# hook that runs as that user.
prepare_dirs() {
    for dir in "$datadir" "$run_dir" "${socket%/*}" "${daemon_log%/*}"; do
        mkdir -p "$dir"
        own "$dir"
    done
    case "$tmpdir" in
        # The system's own: world-writable already, not the user's. /var/tmp is the
        # pod's own in the example (an emptyDir): made the database user's below.
        /tmp | /) ;;
        /?*)
            mkdir -p "$tmpdir"
            if [ "$(id -u)" = 0 ]; then
                own "$tmpdir"
                chmod 1777 "$tmpdir"
            fi ;;
    esac
}

# own PATH...: chown to the database user (only root can, and only for root does mariadbd
# switch to that user; otherwise it runs as, and writes as, the caller).
own() {
    [ "$(id -u)" = 0 ] || return 0
    chown "$db_user:$db_group" "$@"
}

# log_tail FILE: its last lines on stderr, under a line naming it.
log_tail() {
    if [ -s "$1" ]; then
        echo "$hook: last lines of $1:" >&2
        tail -n 25 "$1" >&2
    else
        echo "$hook: $1 is empty or missing" >&2
    fi
}

# start_daemon ARGS...: mariadbd with the config and ARGS in the background, in this
# hook's process group (the agent signals that group when the container stops), with
# stdin, stdout and stderr on /dev/null and its log: the agent reads the hook's pipes
# until they close, so the daemon must not hold them. Sets daemon_pid.
start_daemon() {
    : >>"$daemon_log"
    own "$daemon_log"  # mariadbd reopens it as the database user
    mariadbd --defaults-file="$GALERA_CNF" "$@" </dev/null >>"$daemon_log" 2>&1 &
    daemon_pid=$!
}

# wait_answering PID LOG [PING OPTIONS...]: poll `mariadb-admin ping` (with the config, or
# the options given) every 0.2 s until the server answers; exit 1 at once, with LOG's last
# lines, when the process PID, this hook's child, has died. Not `alive`: until the forked
# shell has exec'd mariadbd, /proc names the child after this hook, and waiting for a
# child that still runs would hang. The agent's hook timeout bounds the wait.
wait_answering() {
    wait_pid=$1
    wait_log=$2
    shift 2
    [ $# -gt 0 ] || set -- --defaults-file="$GALERA_CNF"
    while :; do
        if mariadb-admin "$@" --connect-timeout=2 ping >/dev/null 2>&1; then
            return 0
        fi
        if ! exists "$wait_pid"; then
            wait_status=0
            wait "$wait_pid" 2>/dev/null || wait_status=$?
            echo "$hook: mariadbd (pid $wait_pid) exited with status $wait_status" \
                "before it answered" >&2
            log_tail "$wait_log"
            exit 1
        fi
        sleep 0.2
    done
}

# grastate_seqno: grastate.dat's seqno on stdout ("" when the file or its line is missing).
grastate_seqno() {
    [ -f "$datadir/grastate.dat" ] || return 0
    awk -F: '$1 == "seqno" { gsub(/[ \t\r]/, "", $2); print $2; exit }' "$datadir/grastate.dat"
}

# recover_position: `mariadbd --wsrep-recover` (as the config's user, no networking, its
# log, socket and pid file temporary files in the run dir) reads InnoDB's redo log and
# prints the wsrep position it holds; sets recovered_uuid and recovered_seqno (-1: a
# cluster's uuid but nothing committed). 1, with the log's last lines on stderr, when it
# names no position. Needs prepare_dirs first.
recover_position() {
    recover_base=$run_dir/wsrep-recover.$$
    rm -f "$recover_base.log"
    : >"$recover_base.log"
    own "$recover_base.log"
    recover_status=0
    mariadbd --defaults-file="$GALERA_CNF" --wsrep-recover --log-error="$recover_base.log" \
        --skip-networking --socket="$recover_base.sock" --pid-file="$recover_base.pid" \
        </dev/null >>"$recover_base.log" 2>&1 || recover_status=$?
    hex='[0-9a-fA-F]'
    uuid="$hex\{8\}-$hex\{4\}-$hex\{4\}-$hex\{4\}-$hex\{12\}"
    recovered=$(sed -n "s/.*WSREP: Recovered position: *\\($uuid:-\\{0,1\\}[0-9][0-9]*\\).*/\\1/p" \
        "$recover_base.log" | tail -n 1)
    recovered_uuid=${recovered%:*}
    recovered_seqno=${recovered##*:}
    if [ -z "$recovered" ] || [ "$recovered_seqno" -lt -1 ]; then
        echo "$hook: mariadbd --wsrep-recover (exit status $recover_status) recovered no" \
            "position from $datadir" >&2
        log_tail "$recover_base.log"
        rm -f "$recover_base.log" "$recover_base.sock" "$recover_base.pid"
        return 1
    fi
    rm -f "$recover_base.log" "$recover_base.sock" "$recover_base.pid"
}

# start_position: after a crash (grastate.dat's seqno -1, or no grastate.dat) in an
# initialised data dir, mariadbd does not look in InnoDB for its position (mysqld_safe and
# the systemd unit's galera_recovery do, and pass it): without it Galera starts a new
# history (a seed resets its seqno and uuid; a joiner needs a full copy). Sets
# start_args to --wsrep-start-position=<uuid>:<seqno>, or to nothing when not needed;
# 1 when recovery names no position.
start_args=""
start_position() {
    start_args=""
    [ -d "$datadir/mysql" ] || return 0
    case "$(grastate_seqno)" in "" | -1) ;; *) return 0 ;; esac
    recover_position || return 1
    start_args="--wsrep-start-position=$recovered_uuid:$recovered_seqno"
    echo "$hook: recovered position $recovered_uuid:$recovered_seqno from InnoDB"
}
