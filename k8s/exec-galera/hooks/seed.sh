#!/bin/sh
# seed.sh: bootstrap a new Primary component on this node (the agent's vote chose it; the
# current primaries' addresses, if any, come as arguments and are not needed). A data dir
# without a system schema is initialised first, as the MariaDB image does (and
# $GALERA_INIT_SQL, when it names a file, run on a temporary server with wsrep off);
# grastate.dat gets safe_to_bootstrap: 1; after a crash the position InnoDB holds is
# recovered (--wsrep-recover) and passed as --wsrep-start-position; then mariadbd starts
# with --wsrep-new-cluster in the background, in this hook's process group, and the hook
# waits until it answers.
# Exit codes: 0 mariadbd answers; 1 it could not start (already running, initialisation
# failed, no position recovered after a crash, or it died: its log's last lines on
# stderr); 2 no usable config.
set -eu
. "$(dirname "$0")/common.sh"

if running; then
    echo "$hook: mariadbd is already running (pid $pid); not bootstrapping over it" >&2
    exit 1
fi
prepare_dirs

# Present while an initialisation is under way: a data dir it left half done (the init SQL
# failed, the pod was killed) must not become a cluster's seed silently.
marker=$datadir/.sts-init-incomplete
if [ -d "$datadir/mysql" ] && [ -e "$marker" ]; then
    echo "$hook: an earlier initialisation of $datadir did not finish ($marker);" \
        "empty the data dir to initialise it again" >&2
    exit 1
fi

initialised=""
if [ ! -d "$datadir/mysql" ]; then
    if ! id -un >/dev/null 2>&1; then
        echo "$hook: uid $(id -u) has no name in /etc/passwd, so mariadbd's socket cannot" \
            "authenticate the hooks; run as a user the image names (mysql, 999)" >&2
        exit 1
    fi
    initialised=yes
    : >"$marker"
    install_log=$run_dir/install-db.log
    # root@localhost and $socket_user@localhost: accounts the socket authenticates.
    if ! mariadb-install-db --no-defaults ${user_option:+"$user_option"} --datadir="$datadir" \
        --skip-test-db --auth-root-authentication-method=socket \
        --auth-root-socket-user="$socket_user" </dev/null >"$install_log" 2>&1
    then
        echo "$hook: mariadb-install-db failed" >&2
        log_tail "$install_log"
        exit 1
    fi
    if [ -n "${GALERA_INIT_SQL:-}" ] && [ -f "$GALERA_INIT_SQL" ]; then
        init_sock=$run_dir/init.$$.sock
        init_log=$run_dir/init-sql.log
        set -- --no-defaults ${user_option:+"$user_option"} --datadir="$datadir" --skip-networking \
            --wsrep-on=OFF --socket="$init_sock" --pid-file="$run_dir/init.$$.pid" \
            --innodb-buffer-pool-size=32M
        case "$tmpdir" in /?*) set -- "$@" --tmpdir="$tmpdir" ;; esac
        mariadbd "$@" </dev/null >"$init_log" 2>&1 &
        init_pid=$!
        wait_answering "$init_pid" "$init_log" --no-defaults --socket="$init_sock"
        if ! mariadb --no-defaults --socket="$init_sock" <"$GALERA_INIT_SQL" \
            >>"$init_log" 2>&1
        then
            echo "$hook: $GALERA_INIT_SQL failed on the temporary server" >&2
            log_tail "$init_log"
            mariadb-admin --no-defaults --socket="$init_sock" shutdown \
                >/dev/null 2>&1 || kill "$init_pid" 2>/dev/null || true
            wait "$init_pid" || true
            exit 1
        fi
        mariadb-admin --no-defaults --socket="$init_sock" shutdown >>"$init_log" 2>&1
        init_status=0
        wait "$init_pid" || init_status=$?
        if [ "$init_status" -ne 0 ]; then
            echo "$hook: the temporary server exited with status $init_status" >&2
            log_tail "$init_log"
            exit 1
        fi
    fi
    rm -f "$marker"
fi

# The vote chose this node: Galera's own guard against bootstrapping from a node that may
# not hold the latest state is the agent's to decide.
grastate=$datadir/grastate.dat
if [ -f "$grastate" ] && ! grep -q '^safe_to_bootstrap: *1' "$grastate"; then
    awk '/^safe_to_bootstrap:/ { print "safe_to_bootstrap: 1"; done = 1; next } { print }
        END { if (!done) print "safe_to_bootstrap: 1" }' "$grastate" >"$grastate.sts-tmp"
    own "$grastate.sts-tmp"
    chmod 0660 "$grastate.sts-tmp"
    mv -f "$grastate.sts-tmp" "$grastate"
fi

# After a crash, the position InnoDB holds: without it the new cluster starts a new history.
if [ -z "$initialised" ] && ! start_position; then
    echo "$hook: not bootstrapping from a data dir whose position is unknown" >&2
    exit 1
fi
# shellcheck disable=SC2086 # start_args: one option or none
start_daemon --wsrep-new-cluster $start_args
wait_answering "$daemon_pid" "$daemon_log"
echo "$hook: mariadbd (pid $daemon_pid) bootstrapped a new cluster and answers"
