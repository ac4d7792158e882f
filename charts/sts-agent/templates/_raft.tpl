{{/* What the raft stores (etcd, rqlite, Consul) share: their pods' user, the resources
their containers default to, the agent's own image for init. */}}
{{- define "sts-agent.raft.defaults" -}}
uid: 65532
initImage: ""
initResources:
  requests: {cpu: 50m, memory: 64Mi}
  limits: {cpu: "1", memory: 128Mi}
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {cpu: "1", memory: 512Mi}
{{- end -}}
{{- define "sts-agent.etcd.defaults" -}}{{ include "sts-agent.raft.defaults" . }}{{- end -}}
{{- define "sts-agent.rqlite.defaults" -}}{{ include "sts-agent.raft.defaults" . }}{{- end -}}
{{- define "sts-agent.consul.defaults" -}}{{ include "sts-agent.raft.defaults" . }}{{- end -}}
{{- define "sts-agent.etcd.initPorts" -}}{{- end -}}
{{- define "sts-agent.rqlite.initPorts" -}}{{- end -}}
{{- define "sts-agent.consul.initPorts" -}}{{- end -}}
