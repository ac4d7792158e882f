{{/* Consul: init renders consul.json for the pod's namespace and cluster domain. */}}

{{- define "sts-agent.consul.checkov" -}}{{- end -}}

{{- define "sts-agent.consul.initEnv" -}}
- {name: AGENT_TEMPLATES_DIR, value: /templates}
- {name: AGENT_OUTPUT_DIR, value: /config}
{{- end -}}

{{- define "sts-agent.consul.initMounts" -}}
- {name: templates, mountPath: /templates, readOnly: true}
- {name: config, mountPath: /config}
{{- end -}}

{{- define "sts-agent.consul.container" -}}
name: consul
{{ include "sts-agent.storeImage" . }}
command: ["consul", "agent", "-config-file=/config/consul.json"]
ports:
  - {name: http, containerPort: 8500}
  - {name: rpc, containerPort: 8300}
  - {name: serf-lan, containerPort: 8301}
  - {name: serf-lan-udp, containerPort: 8301, protocol: UDP}
  - {name: dns, containerPort: 8600, protocol: UDP}
{{ include "sts-agent.storeProbes" "http" }}
volumeMounts:
  - {name: config, mountPath: /config, readOnly: true}
  - {name: data, mountPath: /consul/data}
{{- end -}}

{{- define "sts-agent.consul.storeEnv" -}}{{- end -}}
{{- define "sts-agent.consul.agentEnv" -}}{{- end -}}
{{- define "sts-agent.consul.agentMounts" -}}{{- end -}}

{{- define "sts-agent.consul.volumes" -}}
- name: templates
  configMap:
    name: {{ include "sts-agent.fullname" . }}-templates
- name: config
  emptyDir: {}
{{- end -}}

{{- define "sts-agent.consul.templates" -}}
consul.json.j2: |
{{ .Files.Get "files/consul.json.j2" | trimSuffix "\n" | indent 2 }}
{{- end -}}

{{- define "sts-agent.consul.peerPorts" -}}
- {name: http, port: 8500, targetPort: http}
- {name: rpc, port: 8300, targetPort: rpc}
- {name: serf-lan, port: 8301, targetPort: serf-lan}
{{- end -}}
{{- define "sts-agent.consul.clientPorts" -}}
- {name: http, port: 8500, targetPort: http}
- {name: dns, port: 8600, targetPort: dns, protocol: UDP}
{{- end -}}

{{- define "sts-agent.consul.raftPorts" -}}
- {port: 8300, protocol: TCP}
- {port: 8301, protocol: TCP}
- {port: 8301, protocol: UDP}
{{- end -}}
{{- define "sts-agent.consul.openPorts" -}}
- {port: 8500, protocol: TCP}
- {port: 8600, protocol: TCP}
- {port: 8600, protocol: UDP}
{{- end -}}
