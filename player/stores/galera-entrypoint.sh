#!/bin/sh
# What the MariaDB image's entrypoint does before mariadbd, as the player plays it: a data
# dir without a system schema is initialised first (the root password from
# MARIADB_ROOT_PASSWORD_FILE, then /docker-entrypoint-initdb.d/*.sql and MARIADB_INIT_SQL,
# on a temporary server with wsrep off), then mariadbd runs as mysql with the command's
# arguments. A joiner's own initialisation is replaced by its full copy.
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
case "$datadir" in /?*) ;; *) echo "galera-entrypoint: no datadir ($datadir)" >&2; exit 2 ;; esac
case "$socket" in /?*/*) ;; *) echo "galera-entrypoint: no socket ($socket)" >&2; exit 2 ;; esac
# What the pod's fsGroup gives mariadbd on a real node: its volumes writable by it.
mkdir -p "$datadir" "${socket%/*}"
chown mysql:mysql "$datadir" "${socket%/*}"
case "$tmpdir" in
    /?*) mkdir -p "$tmpdir" && chmod 1777 "$tmpdir" && export TMPDIR="$tmpdir" ;;  # the pod's own
esac
if [ ! -d "$datadir/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
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
        mariadbd --no-defaults --user=mysql --datadir="$datadir" --skip-networking \
            --wsrep-on=OFF --socket="$socket" --pid-file="$datadir/.init.pid" \
            --innodb-buffer-pool-size=32M &
        server=$!
        tries=0
        until mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1; do
            tries=$((tries + 1))
            [ "$tries" -lt 300 ] || { echo "galera-entrypoint: temporary server never answered" >&2; exit 1; }
            kill -0 "$server" 2>/dev/null || { echo "galera-entrypoint: temporary server died" >&2; exit 1; }
            sleep 0.1
        done
        printf '%s\n' "$sql" | mariadb --socket="$socket" -uroot
        mariadb-admin --socket="$socket" -uroot shutdown
        wait "$server"
    fi
fi
exec setpriv --reuid=mysql --regid=mysql --init-groups -- mariadbd "$@"
