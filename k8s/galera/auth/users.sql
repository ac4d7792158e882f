-- Run once, by the MariaDB image's entrypoint, on the first pod of a new cluster; the
-- other pods receive it with their first full copy. The agent's status user needs no
-- privilege at all (USAGE reads SHOW GLOBAL STATUS); its password must match
-- status-password.
CREATE USER IF NOT EXISTS 'sts-agent'@'%' IDENTIFIED BY 'replace-me-status';
-- The full copy's donor (wsrep_sst_method = mariabackup): mariabackup, run as the OS user
-- mysql, logs in over the socket; what it needs to take a backup, nothing more.
CREATE USER IF NOT EXISTS 'mysql'@'localhost' IDENTIFIED VIA unix_socket;
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'mysql'@'localhost';
