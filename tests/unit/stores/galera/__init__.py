"""Galera: position, vote, wsrep status."""
