{{/* Names and labels shared by every object of the chart. */}}
{{- define "messagebus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "messagebus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "messagebus.headless" -}}
{{- printf "%s-headless" (include "messagebus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "messagebus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "messagebus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "messagebus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "messagebus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "messagebus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "messagebus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "messagebus.cluster" -}}
{{- if eq .Values.mode "cluster" -}}true{{- else if eq .Values.mode "standalone" -}}{{- else -}}
{{- fail (printf "mode must be cluster or standalone, not %q" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{- define "messagebus.authSecret" -}}
{{- default (printf "%s-auth" (include "messagebus.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "messagebus.s3Secret" -}}
{{- if .Values.cluster.s3.existingSecret -}}
{{- .Values.cluster.s3.existingSecret -}}
{{- else if .Values.cluster.s3.accessKeyId -}}
{{- printf "%s-s3" (include "messagebus.fullname" .) -}}
{{- end -}}
{{- end -}}
