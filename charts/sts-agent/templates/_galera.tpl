{{/* Galera (MariaDB): init recovers the node's position, takes part in the outage vote and
renders galera.cnf; the sidecar reads wsrep status through mariadbd's socket. */}}

{{- define "sts-agent.galera.defaults" -}}
uid: 999
initImage: {{ printf "%s:%s" .Values.galera.agentImage.repository (default .Chart.AppVersion .Values.galera.agentImage.tag) }}
initResources:
  requests: {cpu: 50m, memory: 128Mi}
  limits: {cpu: "1", memory: 512Mi}
resources:
  requests: {cpu: 250m, memory: 512Mi}
  limits: {cpu: "2", memory: 1Gi}
{{- end -}}

{{- define "sts-agent.galera.checkov" -}}
checkov.io/skip2: >-
  CKV_K8S_40=uid 999 is the MariaDB image's mysql user, whose files the data volume holds;
  init runs as it too, so grastate.dat keeps the owner mariadbd expects.
{{- end -}}

{{- define "sts-agent.galera.initEnv" -}}
- {name: AGENT_DATA_DIR, value: /var/lib/mysql}
- {name: AGENT_TEMPLATES_DIR, value: /templates}
- {name: AGENT_OUTPUT_DIR, value: /config}
- {name: AGENT_STORE_USERNAME, value: sts-agent}
- {name: AGENT_STORE_PASSWORD_FILE, value: /auth/status-password}
- {name: AGENT_DNS_WAIT_TIMEOUT_SECONDS, value: "300"}
- {name: AGENT_VAR_BUFFER_POOL, value: 128M}
{{- end -}}

{{/* Init serves GET /init to the other pods' inits (the outage vote). */}}
{{- define "sts-agent.galera.initPorts" -}}
- {name: agent, containerPort: 9090}
{{- end -}}

{{- define "sts-agent.galera.initMounts" -}}
- {name: data, mountPath: /var/lib/mysql}
- {name: config, mountPath: /config}
- {name: templates, mountPath: /templates, readOnly: true}
- {name: auth, mountPath: /auth, readOnly: true}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end -}}

{{- define "sts-agent.galera.container" -}}
name: galera
{{ include "sts-agent.storeImage" . }}
args: ["mariadbd", "--defaults-extra-file=/config/galera.cnf"]
ports:
  - {name: mysql, containerPort: 3306}
  - {name: group, containerPort: 4567}
  - {name: sst, containerPort: 4444}
  - {name: ist, containerPort: 4568}
# Readiness as a member is the agent's.
readinessProbe:
  tcpSocket: {port: mysql}
  periodSeconds: 2
# Fails only when the agent wrote the marker: mariadbd has answered outside the Primary
# component for 60 s while a peer is in one, or the vote's seed after a power cut waited
# for a view that cannot re-form (restarted, it seeds). Not on SQL: a joiner receiving a full copy
# opens no socket for as long as the copy takes. The agent down writes no marker.
livenessProbe:
  exec:
    command: ["test", "!", "-e", "/config/restart-mariadbd"]
  initialDelaySeconds: 10
  periodSeconds: 5
  failureThreshold: 1
lifecycle:
  # Holds mariadbd's SIGTERM until the agent's leave (its turn, the clean stop) is over.
  preStop:
    httpGet: {path: /leave/wait, port: 9090}
volumeMounts:
  - {name: data, mountPath: /var/lib/mysql}
  - {name: config, mountPath: /config, readOnly: true}
  - {name: run, mountPath: /run/mysqld}
  - {name: tmp, mountPath: /var/tmp}
  - {name: auth, mountPath: /auth, readOnly: true}
  - {name: auth, mountPath: /docker-entrypoint-initdb.d, readOnly: true}
{{- end -}}

{{- define "sts-agent.galera.storeEnv" -}}
- {name: MARIADB_ROOT_PASSWORD_FILE, value: /auth/root-password}
{{- end -}}

{{- define "sts-agent.galera.agentEnv" -}}
- {name: AGENT_STORE_URL, value: "unix:///run/mysqld/mysqld.sock"}
- {name: AGENT_STORE_USERNAME, value: sts-agent}
- {name: AGENT_STORE_PASSWORD_FILE, value: /auth/status-password}
# init's galera.cnf: the agent takes the seed's wsrep-new-cluster out once another member
# has joined, so a restart of mariadbd alone joins.
- {name: AGENT_OUTPUT_DIR, value: /config}
# mariadbd's liveness probe fails while this file exists: a node stuck outside the
# Primary component is restarted by the kubelet.
- {name: AGENT_GALERA_RESTART_MARKER, value: /config/restart-mariadbd}
{{- end -}}

{{- define "sts-agent.galera.agentMounts" -}}
- {name: run, mountPath: /run/mysqld, readOnly: true}
- {name: config, mountPath: /config}
- {name: auth, mountPath: /auth, readOnly: true}
{{- end -}}

{{- define "sts-agent.galera.secretName" -}}
{{- default (printf "%s-auth" (include "sts-agent.fullname" .)) .Values.galera.auth.existingSecret -}}
{{- end -}}

{{- define "sts-agent.galera.volumes" -}}
- name: config
  emptyDir: {}
- name: run
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: templates
  configMap:
    name: {{ include "sts-agent.fullname" . }}-templates
- name: auth
  secret:
    secretName: {{ include "sts-agent.galera.secretName" . }}
    defaultMode: 0440
{{- end -}}

{{- define "sts-agent.galera.templates" -}}
galera.cnf.j2: |
{{ .Files.Get "files/galera.cnf.j2" | trimSuffix "\n" | indent 2 }}
{{- end -}}

{{/* The root and status passwords, and users.sql (run once on the first pod of a new
cluster). A password not given is the one the release's Secret holds, else a new one. */}}
{{- define "sts-agent.galera.auth" -}}
{{- $old := (lookup "v1" "Secret" .Release.Namespace (include "sts-agent.galera.secretName" .)).data | default dict -}}
{{- $root := .Values.galera.auth.rootPassword | default (get $old "root-password" | b64dec) | default (randAlphaNum 24) -}}
{{- $status := .Values.galera.auth.statusPassword | default (get $old "status-password" | b64dec) | default (randAlphaNum 24) -}}
root-password: {{ $root | quote }}
status-password: {{ $status | quote }}
users.sql: |
  -- Run once, by the MariaDB image's entrypoint, on the first pod of a new cluster; the
  -- other pods receive it with their first full copy. The agent's status user needs no
  -- privilege at all (USAGE reads SHOW GLOBAL STATUS).
  CREATE USER IF NOT EXISTS 'sts-agent'@'%' IDENTIFIED BY {{ $status | squote }};
  -- The full copy's donor (wsrep_sst_method = mariabackup): mariabackup, run as the OS
  -- user mysql, logs in over the socket; what it needs to take a backup, nothing more.
  CREATE USER IF NOT EXISTS 'mysql'@'localhost' IDENTIFIED VIA unix_socket;
  GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'mysql'@'localhost';
{{- end -}}

{{- define "sts-agent.galera.peerPorts" -}}
- {name: mysql, port: 3306, targetPort: mysql}
- {name: group, port: 4567, targetPort: group}
- {name: sst, port: 4444, targetPort: sst}
- {name: ist, port: 4568, targetPort: ist}
{{- end -}}
{{- define "sts-agent.galera.clientPorts" -}}
- {name: mysql, port: 3306, targetPort: mysql}
{{- end -}}

{{- define "sts-agent.galera.raftPorts" -}}
- {port: 4567, protocol: TCP}
- {port: 4444, protocol: TCP}
- {port: 4568, protocol: TCP}
{{- end -}}
{{- define "sts-agent.galera.openPorts" -}}
- {port: 3306, protocol: TCP}
{{- end -}}
