"""Galera (MariaDB): position recovery, the operator-less bootstrap vote, wsrep status."""
