{{/* etcd: init renders etcd's config file (a new cluster, or a join as a learner). */}}

{{- define "sts-agent.etcd.checkov" -}}
checkov.io/skip2: >-
  CKV_K8S_116=Plain HTTP by default; etcd's TLS flags go into the rendered config, and the
  agent speaks TLS to etcd (agent.settings storeCaFile, storeCertFile, storeKeyFile).
checkov.io/skip3: >-
  CKV_K8S_117=Client certificate auth needs a CA of your own; see CKV_K8S_116.
checkov.io/skip4: >-
  CKV_K8S_119=Peer TLS needs per-pod certificates of your own; see CKV_K8S_116.
{{- end -}}

{{- define "sts-agent.etcd.initEnv" -}}
- {name: AGENT_TEMPLATES_DIR, value: /templates}
- {name: AGENT_OUTPUT_DIR, value: /config}
- {name: AGENT_DATA_DIR, value: /var/lib/etcd/data}
- {name: AGENT_VAR_DATA_DIR, value: /var/lib/etcd/data}
{{- end -}}

{{- define "sts-agent.etcd.initMounts" -}}
- {name: templates, mountPath: /templates, readOnly: true}
- {name: config, mountPath: /config}
- {name: data, mountPath: /var/lib/etcd}
{{- end -}}

{{- define "sts-agent.etcd.container" -}}
name: etcd
{{ include "sts-agent.storeImage" . }}
command: ["etcd", "--config-file", "/config/etcd.conf.yml"]
ports:
  - {name: client, containerPort: 2379}
  - {name: peer, containerPort: 2380}
{{ include "sts-agent.storeProbes" "client" }}
volumeMounts:
  - {name: config, mountPath: /config, readOnly: true}
  - {name: data, mountPath: /var/lib/etcd}
{{- end -}}

{{- define "sts-agent.etcd.storeEnv" -}}{{- end -}}
{{- define "sts-agent.etcd.agentEnv" -}}{{- end -}}
{{- define "sts-agent.etcd.agentMounts" -}}{{- end -}}

{{- define "sts-agent.etcd.volumes" -}}
- name: templates
  configMap:
    name: {{ include "sts-agent.fullname" . }}-templates
- name: config
  emptyDir: {}
{{- end -}}

{{- define "sts-agent.etcd.templates" -}}
etcd.conf.yml.j2: |
{{ .Files.Get "files/etcd.conf.yml.j2" | trimSuffix "\n" | indent 2 }}
{{- end -}}

{{/* The governing Service's ports, then the client Service's. */}}
{{- define "sts-agent.etcd.peerPorts" -}}
- {name: client, port: 2379, targetPort: client}
- {name: peer, port: 2380, targetPort: peer}
{{- end -}}
{{- define "sts-agent.etcd.clientPorts" -}}
- {name: client, port: 2379, targetPort: client}
{{- end -}}

{{/* NetworkPolicy: raft between the store's pods; clients on the client port. */}}
{{- define "sts-agent.etcd.raftPorts" -}}
- {port: 2380, protocol: TCP}
{{- end -}}
{{- define "sts-agent.etcd.openPorts" -}}
- {port: 2379, protocol: TCP}
{{- end -}}
