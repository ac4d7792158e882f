#!/bin/sh
# What the MariaDB image's entrypoint does before mariadbd, as the player plays it: a data
# dir without a system schema is initialised first (users from MARIADB_INIT_SQL, a file of
# SQL, on a temporary server with wsrep off), then mariadbd runs as mysql with the
# command's arguments. A joiner's own initialisation is replaced by its full copy.
set -eu
case "${1:-}" in mariadbd | mysqld) shift ;; esac  # the image's CMD style: mariadbd <args>
datadir=""
for arg in "$@"; do
    case "$arg" in --datadir=*) datadir="${arg#--datadir=}" ;; esac
done
[ -n "$datadir" ] || { echo "galera-entrypoint: no --datadir= among the arguments" >&2; exit 2; }
mkdir -p "$datadir"
chown mysql:mysql "$datadir"
if [ ! -d "$datadir/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
    if [ -n "${MARIADB_INIT_SQL:-}" ]; then
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
        mariadb --socket="$socket" -uroot < "$MARIADB_INIT_SQL"
        mariadb-admin --socket="$socket" -uroot shutdown
        wait "$server"
    fi
fi
exec setpriv --reuid=mysql --regid=mysql --init-groups -- mariadbd "$@"
