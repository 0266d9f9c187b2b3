{{- define "pushgate.name" -}}pushgate{{- end -}}
{{- define "pushgate.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "pushgate.labels" -}}
app.kubernetes.io/part-of: pushgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "pushgate.operator.selector" -}}
app.kubernetes.io/name: pushgate-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "pushgate.adapter.selector" -}}
app.kubernetes.io/name: pushgate-metrics-adapter
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
