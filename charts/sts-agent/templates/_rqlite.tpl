{{/* rqlite: rqlited joins by its own flags; the agent signs in as the sts-agent user. */}}

{{- define "sts-agent.rqlite.checkov" -}}{{- end -}}
{{- define "sts-agent.rqlite.templates" -}}{{- end -}}

{{- define "sts-agent.rqlite.initEnv" -}}
- {name: AGENT_DATA_DIR, value: /rqlite/file/data}
- {name: AGENT_STORE_USERNAME, value: sts-agent}
- {name: AGENT_STORE_PASSWORD_FILE, value: /auth/agent-password}
{{- end -}}

{{- define "sts-agent.rqlite.initMounts" -}}
- {name: data, mountPath: /rqlite/file}
- {name: auth, mountPath: /auth, readOnly: true}
{{- end -}}

{{- define "sts-agent.rqlite.container" -}}
{{- $name := include "sts-agent.fullname" . -}}
name: rqlite
{{ include "sts-agent.storeImage" . }}
command: ["rqlited"]
args:
  - -node-id=$(POD_NAME)
  - -http-addr=0.0.0.0:4001
  - -http-adv-addr=$(POD_NAME).{{ $name }}:4001
  - -raft-addr=0.0.0.0:4002
  - -raft-adv-addr=$(POD_NAME).{{ $name }}:4002
  - -bootstrap-expect={{ .Values.bootstrapExpect }}
  - -join={{ range $i, $_ := until (int .Values.bootstrapExpect) }}{{ if $i }},{{ end }}{{ $name }}-{{ $i }}.{{ $name }}:4002{{ end }}
  - -join-interval=1s
  - -join-attempts=120
  - -auth=/auth/users.json
  - -join-as=cluster
  - /rqlite/file/data
ports:
  - {name: client, containerPort: 4001}
  - {name: raft, containerPort: 4002}
{{ include "sts-agent.storeProbes" "client" }}
volumeMounts:
  - {name: data, mountPath: /rqlite/file}
  - {name: auth, mountPath: /auth, readOnly: true}
{{- end -}}

{{- define "sts-agent.rqlite.storeEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
{{- end -}}

{{- define "sts-agent.rqlite.agentEnv" -}}
- {name: AGENT_STORE_USERNAME, value: sts-agent}
- {name: AGENT_STORE_PASSWORD_FILE, value: /auth/agent-password}
{{- end -}}

{{- define "sts-agent.rqlite.agentMounts" -}}
- {name: auth, mountPath: /auth, readOnly: true}
{{- end -}}

{{- define "sts-agent.rqlite.secretName" -}}
{{- default (printf "%s-auth" (include "sts-agent.fullname" .)) .Values.rqlite.auth.existingSecret -}}
{{- end -}}

{{- define "sts-agent.rqlite.volumes" -}}
- name: auth
  secret:
    secretName: {{ include "sts-agent.rqlite.secretName" . }}
    defaultMode: 0440
{{- end -}}

{{/* The -auth file and the agent's password. A password not given is the one the release's
Secret already holds (an upgrade keeps it), else a new random one. */}}
{{- define "sts-agent.rqlite.auth" -}}
{{- $old := (lookup "v1" "Secret" .Release.Namespace (include "sts-agent.rqlite.secretName" .)).data | default dict -}}
{{- $users := dict -}}
{{- if hasKey $old "users.json" -}}
{{- range (index $old "users.json" | b64dec | fromJsonArray) -}}
{{- $_ := set $users .username .password -}}
{{- end -}}
{{- end -}}
{{- $admin := .Values.rqlite.auth.adminPassword | default (get $users "admin") | default (randAlphaNum 24) -}}
{{- $agent := .Values.rqlite.auth.agentPassword | default (get $users "sts-agent") | default (randAlphaNum 24) -}}
{{- $cluster := .Values.rqlite.auth.clusterPassword | default (get $users "cluster") | default (randAlphaNum 24) -}}
users.json: |
  [
    {"username": "admin", "password": {{ $admin | toJson }}, "perms": ["all"]},
    {"username": "sts-agent", "password": {{ $agent | toJson }}, "perms": ["status", "ready", "remove", "leader-ops"]},
    {"username": "cluster", "password": {{ $cluster | toJson }}, "perms": ["join", "join-read-only", "status"]}
  ]
agent-password: {{ $agent | quote }}
{{- end -}}

{{- define "sts-agent.rqlite.peerPorts" -}}
- {name: client, port: 4001, targetPort: client}
- {name: raft, port: 4002, targetPort: raft}
{{- end -}}
{{- define "sts-agent.rqlite.clientPorts" -}}
- {name: client, port: 4001, targetPort: client}
{{- end -}}

{{- define "sts-agent.rqlite.raftPorts" -}}
- {port: 4002, protocol: TCP}
{{- end -}}
{{- define "sts-agent.rqlite.openPorts" -}}
- {port: 4001, protocol: TCP}
{{- end -}}
