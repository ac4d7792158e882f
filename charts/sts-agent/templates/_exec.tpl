{{/* Any store through exec hooks: one image with the agent, the store and its hooks; the
store's container runs `sts-agent run`, which starts the store by the hooks. */}}

{{- define "sts-agent.exec.image" -}}
{{ printf "%s:%s" .Values.exec.image.repository (default .Chart.AppVersion .Values.exec.image.tag) }}
{{- end -}}

{{- define "sts-agent.exec.defaults" -}}
uid: 999
initImage: {{ include "sts-agent.exec.image" . }}
initPullPolicy: {{ .Values.exec.image.pullPolicy }}
initResources:
  requests: {cpu: 50m, memory: 128Mi}
  limits: {cpu: "1", memory: 512Mi}
resources:
  requests: {cpu: 250m, memory: 512Mi}
  limits: {cpu: "2", memory: 1Gi}
{{- end -}}

{{- define "sts-agent.exec.checkov" -}}
checkov.io/skip2: >-
  CKV_K8S_40=uid 999 is the image's mysql user by default, whose files the data volume
  holds; init runs as it too, so the files the hooks leave keep the owner the store expects.
checkov.io/skip3: >-
  CKV_K8S_38=The agent in the store's container reads the Kubernetes API (scale-down or
  restart; the vote's StatefulSet), so this pod mounts a token, as its sidecar would.
{{- end -}}

{{/* Init's and the store container's environment after the common part. */}}
{{- define "sts-agent.exec.initEnv" -}}
- {name: AGENT_TEMPLATES_DIR, value: /templates}
- {name: AGENT_OUTPUT_DIR, value: /config}
- {name: AGENT_DNS_WAIT_TIMEOUT_SECONDS, value: "300"}
- {name: AGENT_TERMINATION_GRACE_PERIOD_SECONDS, value: {{ .Values.terminationGracePeriodSeconds | quote }}}
- {name: AGENT_EXEC_HOOKS, value: {{ .Values.exec.hooks | default (include "sts-agent.exec.exampleHooks" . | fromYaml) | toJson | quote }}}
{{- with .Values.exec.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* k8s/exec-galera's hooks: the RSS operator's commands, unchanged but for the paths. */}}
{{- define "sts-agent.exec.exampleHooks" -}}
sequence: {command: ["/hooks/sequence.sh"], timeout: 150s}
seed: {command: ["/hooks/seed.sh"], timeout: 120s}
primary: {command: ["/hooks/start.sh"], timeout: 600s}
status: {command: ["/hooks/check.sh"], timeout: 20s}
stop: {command: ["/hooks/stop.sh"], timeout: 60s}
{{- end -}}

{{- define "sts-agent.exec.initPorts" -}}
- {name: agent, containerPort: 9090}
{{- end -}}

{{- define "sts-agent.exec.containerPorts" -}}
- {name: agent, containerPort: 9090}
{{- range .Values.exec.ports }}
- {name: {{ .name }}, containerPort: {{ .containerPort }}{{ with .protocol }}, protocol: {{ . }}{{ end }}}
{{- end }}
{{- end -}}

{{- define "sts-agent.exec.initMounts" -}}
- {name: data, mountPath: {{ .Values.exec.dataDir }}}
- {name: config, mountPath: /config}
{{- range .Values.exec.scratch }}
- {name: {{ .name }}, mountPath: {{ .mountPath }}}
{{- end }}
- {name: templates, mountPath: /templates, readOnly: true}
- {name: hooks, mountPath: /hooks, readOnly: true}
- {name: auth, mountPath: /auth, readOnly: true}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end -}}

{{- define "sts-agent.exec.secretName" -}}
{{- default (printf "%s-auth" (include "sts-agent.fullname" .)) .Values.exec.auth.existingSecret -}}
{{- end -}}

{{- define "sts-agent.exec.volumes" -}}
- name: config
  emptyDir: {}
{{- range .Values.exec.scratch }}
- name: {{ .name }}
  emptyDir: {}
{{- end }}
- name: templates
  configMap:
    name: {{ include "sts-agent.fullname" . }}-templates
- name: hooks
  configMap:
    name: {{ include "sts-agent.fullname" . }}-hooks
    defaultMode: 0555
- name: auth
  secret:
    secretName: {{ include "sts-agent.exec.secretName" . }}
    defaultMode: 0440
{{- end -}}

{{/* name -> content as ConfigMap data: the values' files, else the example's under files/. */}}
{{- define "sts-agent.exec.files" -}}
{{- $given := index . 0 -}}
{{- $root := index . 1 -}}
{{- $glob := index . 2 -}}
{{- if $given }}
{{- range $name, $content := $given }}
{{ $name }}: |
{{ $content | trimSuffix "\n" | indent 2 }}
{{- end }}
{{- else }}
{{- range $path, $_ := $root.Files.Glob $glob }}
{{ base $path }}: |
{{ $root.Files.Get $path | trimSuffix "\n" | indent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "sts-agent.exec.templates" -}}
{{ include "sts-agent.exec.files" (list .Values.exec.templateFiles . "files/exec-galera/*.j2") | trim }}
{{- end -}}

{{- define "sts-agent.exec.hooks" -}}
{{ include "sts-agent.exec.files" (list .Values.exec.hookFiles . "files/exec-galera/hooks/*") | trim }}
{{- end -}}

{{- define "sts-agent.exec.peerPorts" -}}
{{- range .Values.exec.ports }}
- {name: {{ .name }}, port: {{ .containerPort }}, targetPort: {{ .name }}{{ with .protocol }}, protocol: {{ . }}{{ end }}}
{{- end }}
{{- end -}}
{{- define "sts-agent.exec.clientPorts" -}}
{{- range .Values.exec.ports }}{{ if .client }}
- {name: {{ .name }}, port: {{ .containerPort }}, targetPort: {{ .name }}{{ with .protocol }}, protocol: {{ . }}{{ end }}}
{{- end }}{{ end }}
{{- end -}}

{{- define "sts-agent.exec.raftPorts" -}}
{{- range .Values.exec.ports }}{{ if .peer }}
- {port: {{ .containerPort }}, protocol: {{ .protocol | default "TCP" }}}
{{- end }}{{ end }}
{{- end -}}
{{- define "sts-agent.exec.openPorts" -}}
{{- range .Values.exec.ports }}{{ if .client }}
- {port: {{ .containerPort }}, protocol: {{ .protocol | default "TCP" }}}
{{- end }}{{ end }}
{{- end -}}
