"""sts-agent: the StatefulSet companion for raft-based stores."""

__version__ = "0.1.0"
