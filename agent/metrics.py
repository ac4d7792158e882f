"""Prometheus metrics of the sidecar, in a registry of its own (one per agent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CHECKS = ("store_reachable", "leader_known", "member", "caught_up", "not_leaving")
# The Warning Events the chart's alerts count (charts/sts-agent/templates/prometheusrule.yaml).
ALERTED_EVENTS = ("MemberRemoveFailed", "MemberRepairBlocked", "UnsafeUpdateStrategy")


class Metrics:
    """Every metric the agent exports; names are part of the interface."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ready = Gauge("sts_agent_ready", "1 when /readyz answers 200.",
                           registry=self.registry)
        self.check = Gauge("sts_agent_check_ok", "1 when the readiness check passes.",
                           ["check"], registry=self.registry)
        self.members = Gauge("sts_agent_members", "Servers in the raft configuration.",
                             registry=self.registry)
        self.voters = Gauge("sts_agent_voters", "Voting servers in the raft configuration.",
                            registry=self.registry)
        self.leader_changes = Counter("sts_agent_leader_changes",
                                      "Times the observed leader changed.",
                                      registry=self.registry)
        self.lag = Gauge("sts_agent_lag_entries",
                         "Raft entries this node has yet to apply (-1: unknown).",
                         registry=self.registry)
        self.detail = Gauge("sts_agent_store_detail",
                            "What the store says of itself, by name (Galera: cluster_size, "
                            "local_state, last_committed, recv_queue).", ["detail"],
                            registry=self.registry)
        self.poll_seconds = Histogram(
            "sts_agent_poll_seconds", "Duration of one poll of the store(s).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.store_errors = Counter("sts_agent_store_errors",
                                    "Failed store reads by kind.", ["kind"],
                                    registry=self.registry)
        self.repairs = Counter("sts_agent_repairs",
                               "Members the repair removed (result=removed) or failed to "
                               "remove (failed).", ["result"], registry=self.registry)
        self.repair_waiting = Gauge("sts_agent_repair_waiting",
                                    "Silent members of dropped ordinals the repair is "
                                    "waiting on (leader only).", registry=self.registry)
        self.hook_seconds = Histogram(
            "sts_agent_hook_seconds", "Duration of one run of an exec store's hook, by hook "
            "and outcome (ok, failed, timeout, error).", ["hook", "outcome"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry)
        self.events = Counter("sts_agent_events",
                              "Events the agent posted on its pod (each decision it said: "
                              "MemberRemoved, MemberRemoveFailed, MemberRepairBlocked, "
                              "UnsafeUpdateStrategy, ...), by reason and type, counted "
                              "even when the API refused the Event.", ["reason", "type"],
                              registry=self.registry)
        for reason in ALERTED_EVENTS:  # at 0 from the start, so that increase() sees the 1st
            self.events.labels(reason=reason, type="Warning")
        for result in ("removed", "failed"):
            self.repairs.labels(result=result)
        for name in CHECKS:
            self.check.labels(check=name).set(0)
        for kind in ("unavailable", "bad_answer", "leader_unreachable", "internal"):
            self.store_errors.labels(kind=kind)

    def count_event(self, reason: str, warning: bool) -> None:
        self.events.labels(reason=reason, type="Warning" if warning else "Normal").inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
