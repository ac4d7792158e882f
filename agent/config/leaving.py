"""The leave's and the repair's settings, and the Kubernetes API they read; no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.config.base import AgentSettings
from agent.config.types import DnsLabel, HttpUrl


class LeaveSettings(AgentSettings):
    """When and how long a terminating pod leaves, the repair of missed leaves, and the
    Kubernetes API both read (part of Settings)."""

    # --- leave ---------------------------------------------------------------------
    leave_policy: Literal["scale-down", "always", "never"] = Field(
        default="scale-down",
        description="When a terminating pod removes itself from the cluster: scale-down "
        "(only when its ordinal >= the StatefulSet's spec.replicas), always, never.",
    )
    statefulset: DnsLabel | None = Field(
        default=None,
        description="The owning StatefulSet. Default: derived from the pod name.",
    )
    termination_grace_period_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The pod's terminationGracePeriodSeconds (Kubernetes default 30); the "
        "leave procedure must end before it.",
    )
    leave_margin_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Time kept back from the grace period for the store's own shutdown.",
    )
    leave_token_file: Path | None = Field(
        default=None,
        description="If set, POST /leave also accepts non-loopback clients that send "
        "'Authorization: Bearer <this file's content>'.",
    )
    native_sidecar: bool = Field(
        default=False,
        description="The agent runs as a native sidecar (an init container with "
        "restartPolicy Always), so it stops only after the store: the store container's "
        "preStop GET /leave/wait then starts the leave at once (as a classic sidecar it "
        "first gives the agent's own preStop 3 s to start it). The decision still comes "
        "from the Kubernetes API, never from the caller.",
    )
    repair: bool = Field(
        default=True,
        description="The sidecar that leads removes members whose pods are gone for good "
        "without leaving (an ordinal outside the kept ones, its pod absent or not running, "
        "silent for AGENT_REPAIR_AFTER_SECONDS). Needs the Role's pods get.",
    )
    repair_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a member of a dropped ordinal must have been silent, seen "
        "by the leader, before the repair removes it.",
    )
    repair_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the leader's sidecar looks for members to repair; a "
        "healthy cluster costs one read of each member, no Kubernetes call.",
    )
    kube_api_url: HttpUrl | None = Field(
        default=None,
        description="Kubernetes API URL. Default: in-cluster (KUBERNETES_SERVICE_HOST/PORT "
        "and the pod's service account).",
    )
    kube_token_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        description="Service-account token, re-read when the API answers 401 (rotation).",
    )
    kube_ca_file: Path | None = Field(
        default=None, description="CA of the Kubernetes API (with AGENT_KUBE_API_URL)."
    )
    kube_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Budget of one Kubernetes API request."
    )

    def leave_deadline_seconds(self) -> float:
        """How long the leave procedure may take: the grace period minus the margin."""
        return self.termination_grace_period_seconds - self.leave_margin_seconds
