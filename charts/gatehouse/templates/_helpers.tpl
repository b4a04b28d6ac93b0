{{/* Chart name, truncated to 63 characters. */}}
{{- define "gatehouse.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release name when it already contains the chart name. */}}
{{- define "gatehouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* `<fullname>-<release namespace>`, for objects outside the release namespace (ClusterRole,
ClusterRoleBinding, certificateNamespaces Roles, the dashboard ConfigMap): two releases of the
same name in two namespaces would otherwise share, and overwrite, one object. */}}
{{- define "gatehouse.uniqueName" -}}
{{- printf "%s-%s" (include "gatehouse.fullname" .) .Release.Namespace }}
{{- end }}

{{/* The controller image: repository@digest when image.digest is set (it wins over the tag),
otherwise repository:tag with the chart's appVersion as the default tag. */}}
{{- define "gatehouse.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Whether the PodDisruptionBudget is rendered: pdb.enabled, or replicas > 1 when it is null. */}}
{{- define "gatehouse.pdbEnabled" -}}
{{- if kindIs "bool" .Values.pdb.enabled }}
{{- if .Values.pdb.enabled }}true{{ end }}
{{- else if gt (int .Values.replicas) 1 }}true
{{- end }}
{{- end }}
