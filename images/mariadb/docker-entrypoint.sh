#!/bin/sh
# The mariadb image's entrypoint (images/mariadb), and the player's reading of upstream's:
# what it does before mariadbd for what k8s/galera uses. A data dir without a system schema
# is initialised first (the root password from MARIADB_ROOT_PASSWORD_FILE, then
# /docker-entrypoint-initdb.d/*.sql and MARIADB_INIT_SQL, on a temporary server with wsrep
# off), then mariadbd runs as mysql with the command's arguments. Started as root (the
# player), it makes the directories mysql's and drops to mysql; started as mysql (the
# image under k8s/galera's securityContext), the pod's fsGroup did that. A joiner's own
# initialisation is replaced by its full copy.
set -eu
case "${1:-}" in mariadbd | mysqld) shift ;; esac  # the image's CMD style: mariadbd <args>
# The settings as mariadbd reads them (arguments over config files), as the image's
# entrypoint reads them.
setting() {
    key="$1"
    shift
    # Only the table of values after the help text (whose words may start a line too).
    mariadbd "$@" --verbose --help 2>/dev/null \
        | awk -v key="$key" '/^Variables / { table = 1; next } table && $1 == key { print $2; exit }'
}
datadir=$(setting datadir "$@")
socket=$(setting socket "$@")
tmpdir=$(setting tmpdir "$@")
case "$datadir" in /?*) ;; *) echo "docker-entrypoint: no datadir ($datadir)" >&2; exit 2 ;; esac
case "$socket" in /?*/*) ;; *) echo "docker-entrypoint: no socket ($socket)" >&2; exit 2 ;; esac
root="" auth=normal
[ "$(id -u)" -ne 0 ] || { root=1; auth=socket; }
mkdir -p "$datadir" "${socket%/*}"
# As root: what the pod's fsGroup gives mariadbd on a real node, its volumes writable by it.
[ -z "$root" ] || chown mysql:mysql "$datadir" "${socket%/*}"
case "$tmpdir" in
    /?*)  # the pod's own
        mkdir -p "$tmpdir"
        [ -z "$root" ] || chmod 1777 "$tmpdir"
        export TMPDIR="$tmpdir"
        ;;
esac
if [ ! -d "$datadir/mysql" ]; then
    # root@localhost by the OS user root's socket; run as mysql, no OS user is root, so
    # root starts with an empty password on the temporary server (no network), then the
    # one from MARIADB_ROOT_PASSWORD_FILE.
    mariadb-install-db --no-defaults ${root:+--user=mysql} --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method="$auth" >/dev/null
    sql=""
    if [ -n "${MARIADB_ROOT_PASSWORD_FILE:-}" ]; then
        sql="ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$(cat "$MARIADB_ROOT_PASSWORD_FILE")');"
    fi
    for file in /docker-entrypoint-initdb.d/*.sql ${MARIADB_INIT_SQL:-}; do
        if [ -f "$file" ]; then
            sql="$sql
$(cat "$file")"
        fi
    done
    if [ -n "$sql" ]; then
        socket="$datadir/.init.sock"
        mariadbd --no-defaults ${root:+--user=mysql} --datadir="$datadir" --skip-networking \
            --wsrep-on=OFF --socket="$socket" --pid-file="$datadir/.init.pid" \
            --innodb-buffer-pool-size=32M &
        server=$!
        tries=0
        until mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1; do
            tries=$((tries + 1))
            [ "$tries" -lt 300 ] || { echo "docker-entrypoint: temporary server never answered" >&2; exit 1; }
            kill -0 "$server" 2>/dev/null || { echo "docker-entrypoint: temporary server died" >&2; exit 1; }
            sleep 0.1
        done
        printf '%s\n' "$sql" | mariadb --socket="$socket" -uroot
        # SIGTERM is mariadbd's clean shutdown; as mysql, root's socket login ended with
        # the password just set.
        kill "$server"
        wait "$server"
    fi
fi
[ -z "$root" ] || exec setpriv --reuid=mysql --regid=mysql --init-groups -- mariadbd "$@"
exec mariadbd "$@"
