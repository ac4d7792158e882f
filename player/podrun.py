"""Pod ``ordinal`` of a k8s/ example as containers for player.runtime: its volumes made as
the kubelet makes them (fsGroup-owned, ConfigMaps and Secrets as files), each container's
spec from the manifest (env with the Downward API, $(VAR), users, securityContext)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from player import manifests
from player.runtime import Container, config_volume, volume

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "images"
DOMAIN = "cluster.local"


@dataclass
class Pod:
    """Pod ``ordinal`` of a k8s/ example: its volumes made as the kubelet makes them, and
    each of its containers as the runtime would run it."""

    example: str
    workdir: Path
    netns: str
    ip: str
    gateway: str
    ordinal: int = 0
    objects: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.objects = manifests.build(ROOT / "k8s" / self.example)
        self.statefulset = next(o for o in self.objects if o["kind"] == "StatefulSet")
        self.spec: dict[str, Any] = self.statefulset["spec"]["template"]["spec"]
        self.name = f"{self.statefulset['metadata']['name']}-{self.ordinal}"
        self.service = str(self.statefulset["spec"]["serviceName"])
        security = self.spec.get("securityContext") or {}
        self.fs_group: int | None = security.get("fsGroup")
        self.volumes = {v["name"]: self._volume(v) for v in self.spec.get("volumes", [])}
        for claim in self.statefulset["spec"].get("volumeClaimTemplates", []):
            name = claim["metadata"]["name"]
            self.volumes[name] = volume(self.workdir / "volumes" / name, self.fs_group)

    def _object(self, kind: str, name: str) -> dict[str, Any]:
        return next(o for o in self.objects
                    if o["kind"] == kind and o["metadata"]["name"] == name)

    def _volume(self, spec: dict[str, Any]) -> Path:
        path = self.workdir / "volumes" / spec["name"]
        if "configMap" in spec:
            config = self._object("ConfigMap", spec["configMap"]["name"]).get("data") or {}
            return config_volume(path, config, self.fs_group,
                                 spec["configMap"].get("defaultMode", 0o644))
        if "secret" in spec:
            secret = self._object("Secret", spec["secret"]["secretName"])
            data: dict[str, str | bytes] = {
                k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            data.update(secret.get("stringData") or {})
            return config_volume(path, data, self.fs_group,
                                 spec["secret"].get("defaultMode", 0o644))
        if "projected" in spec:  # the service account's: a token no API server will read
            return config_volume(path, {"token": "not-a-token", "ca.crt": "",
                                        "namespace": NAMESPACE}, self.fs_group)
        return volume(path, self.fs_group)

    def container(self, name: str, *, args: list[str] | None = None,
                  command: list[str] | None = None,
                  env: dict[str, str] | None = None) -> Container:
        """Container ``name`` (init or not) as the manifest has it; ``args``, ``command``
        and ``env`` override the manifest's for what a test needs alone."""
        found = next(c for c in [*self.spec.get("initContainers", []),
                                 *self.spec["containers"]] if c["name"] == name)
        pod_security = self.spec.get("securityContext") or {}
        security = {**pod_security, **(found.get("securityContext") or {})}
        fields = {"metadata.name": self.name, "metadata.namespace": NAMESPACE,
                  "status.podIP": self.ip}
        values: dict[str, str] = {}
        for item in found.get("env", []):
            if "value" in item:
                values[item["name"]] = expand(str(item["value"]), values)
            elif "fieldRef" in item.get("valueFrom", {}):
                values[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        values.update(env or {})
        user = None
        if "runAsUser" in security:
            user = (int(security["runAsUser"]), int(security.get("runAsGroup", 0)))
        groups = tuple(g for g in [pod_security.get("fsGroup"),
                                   *pod_security.get("supplementalGroups", [])] if g is not None)
        mounts = {m["mountPath"]: (self.volumes[m["name"]], bool(m.get("readOnly")))
                  for m in found.get("volumeMounts", [])}
        manifest_args = [expand(a, values) for a in found.get("args", [])] or None
        manifest_command = [expand(a, values) for a in found.get("command", [])] or None
        drop = (security.get("capabilities") or {}).get("drop") or []
        search = f"{NAMESPACE}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}"
        resolv = self.workdir / "resolv.conf"
        resolv.write_text(f"search {search}\nnameserver {self.gateway}\noptions ndots:5\n")
        mounts.setdefault("/etc/resolv.conf", (resolv, True))
        return Container(
            name=f"{self.name}-{name}", image=found["image"],
            command=command if command is not None else manifest_command,
            args=args if args is not None else manifest_args,
            env=values, user=user, groups=groups,
            read_only_root=bool(security.get("readOnlyRootFilesystem")),
            drop_all_capabilities="ALL" in drop,
            no_new_privileges=security.get("allowPrivilegeEscalation") is False,
            mounts=mounts, hostname=self.name, netns=self.netns,
            hosts={f"{self.name}.{self.service}.{NAMESPACE}.svc.{DOMAIN}": self.ip,
                   self.name: self.ip})


def expand(word: str, values: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of a command, an argument or an env value."""
    for key, value in values.items():
        word = word.replace(f"$({key})", value)
    return word
