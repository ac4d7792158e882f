{{/* The StatefulSet's name: the release's when it names the store, else <release>-<store>. */}}
{{- define "sts-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Values.store .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pods' selector: the StatefulSet's name, as in the k8s/ examples. */}}
{{- define "sts-agent.selector" -}}
app.kubernetes.io/name: {{ include "sts-agent.fullname" . }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "sts-agent.labels" -}}
{{ include "sts-agent.selector" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ include "sts-agent.fullname" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sts-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-sts-agent" (include "sts-agent.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the agent's ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sts-agent.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The store's section of the values (etcd, rqlite, consul). */}}
{{- define "sts-agent.storeImage" -}}
{{- $image := (index .Values .Values.store).image -}}
image: {{ printf "%s:%s" $image.repository $image.tag }}
imagePullPolicy: {{ $image.pullPolicy }}
{{- end -}}

{{/* The environment both agent containers start with. */}}
{{- define "sts-agent.agentEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- if or .init (ne .root.Values.store "rqlite") }}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
{{- end }}
- {name: AGENT_BACKEND, value: {{ .root.Values.store }}}
- {name: AGENT_SERVICE, value: {{ include "sts-agent.fullname" .root }}}
- {name: AGENT_BOOTSTRAP_EXPECT, value: {{ .root.Values.bootstrapExpect | quote }}}
{{- end -}}

{{/* The agent's settings from .Values.agent.settings, as AGENT_* variables. */}}
{{- define "sts-agent.settings" -}}
{{- range $key, $value := .Values.agent.settings }}
- {name: {{ printf "AGENT_%s" (snakecase $key | upper) }}, value: {{ $value | toString | quote }}}
{{- end }}
{{- end -}}

{{/* The projected token only the agent container mounts. */}}
{{- define "sts-agent.tokenVolume" -}}
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3607}
      - configMap:
          name: kube-root-ca.crt
          items: [{key: ca.crt, path: ca.crt}]
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: {fieldPath: metadata.namespace}
{{- end -}}

{{/* A store container's probes: whether it listens. Readiness as a member is the agent's,
and a liveness probe must never follow the cluster. */}}
{{- define "sts-agent.storeProbes" -}}
readinessProbe:
  tcpSocket: {port: {{ . }}}
  periodSeconds: 1
livenessProbe:
  tcpSocket: {port: {{ . }}}
  periodSeconds: 10
  failureThreshold: 6
lifecycle:
  # Holds the store's SIGTERM while the agent's own preStop (run at the same moment)
  # hands off leadership and removes this member: GET /leave/wait returns when that
  # leave is over (on a restart, once the agent decided to stay).
  preStop:
    httpGet: {path: /leave/wait, port: 9090}
{{- end -}}
