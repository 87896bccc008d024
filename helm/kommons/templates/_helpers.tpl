{{/* Names and labels shared by every template of the chart. */}}

{{- define "kommons.name" -}}
{{- printf "kommons-%s" .Values.role -}}
{{- end -}}

{{- define "kommons.fullname" -}}
{{- if eq .Release.Name "kommons" -}}
{{- include "kommons.name" . -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kommons.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kommons.labels" -}}
app.kubernetes.io/name: kommons
app.kubernetes.io/component: {{ .Values.role }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kommons.selectorLabels" -}}
app.kubernetes.io/name: kommons
app.kubernetes.io/component: {{ .Values.role }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kommons.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The pod spec parts both roles share. */}}
{{- define "kommons.podCommon" -}}
serviceAccountName: {{ include "kommons.fullname" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
securityContext:
{{ toYaml .Values.podSecurityContext | indent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{ toYaml . }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{- define "kommons.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
