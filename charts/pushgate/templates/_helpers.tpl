{{/*
Names. Every object is named from the release, so two releases coexist (in one namespace or two):
namespaced objects <fullname>-<component>; cluster-scoped ones (ClusterRoles, their bindings, the
kube-system RoleBinding) also carry the release namespace, since two releases of the same name may
live in two namespaces. fullname is cut to 40 characters so <fullname>-metrics-adapter stays a
63-character Service name.
*/}}
{{- define "pushgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "pushgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Prefix of cluster-scoped names: <fullname>-<release namespace>. */}}
{{- define "pushgate.clusterName" -}}
{{- printf "%s-%s" (include "pushgate.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "pushgate.operator.name" -}}{{ include "pushgate.fullname" . }}-operator{{- end -}}
{{- define "pushgate.adapter.name" -}}{{ include "pushgate.fullname" . }}-metrics-adapter{{- end -}}

{{- define "pushgate.image" -}}
{{- .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* The standard labels (https://helm.sh/docs/chart_best_practices/labels/), each key once. */}}
{{- define "pushgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pushgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pushgate
{{- end -}}

{{- define "pushgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels and selector of one component: call with (dict "ctx" $ "component" "operator"). */}}
{{- define "pushgate.componentLabels" -}}
{{ include "pushgate.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "pushgate.componentSelector" -}}
{{ include "pushgate.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Pod-level scheduling and pull settings shared by every workload of the chart. */}}
{{- define "pushgate.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "pushgate.podAnnotations" -}}
{{- with .Values.podAnnotations }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
