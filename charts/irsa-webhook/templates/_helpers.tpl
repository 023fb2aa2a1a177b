{{/*
Names. The namespaced objects have the bundles' fixed names (irsa-webhook, irsa-webhook-audit, ...): the release
namespace keeps two releases apart, and generate-certs.sh finds them by those names. The cluster-scoped ones (the
MutatingWebhookConfiguration, the ClusterRoles and their bindings) are named after the release, so two releases in
one cluster never claim the same object: release irsa-webhook (the documented name) gives exactly the bundles' names.
*/}}
{{- define "irsa-webhook.clusterName" -}}
{{ .Release.Name }}
{{- end -}}

{{/* Labels Helm adds to every object's metadata (never to selectors or pod templates), after the object's own. */}}
{{- define "irsa-webhook.labels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The webhook's own labels (Deployment, Service, ServiceAccount, webhook configuration, ...). */}}
{{- define "irsa-webhook.ownLabels" -}}
app.kubernetes.io/name: irsa-webhook
app.kubernetes.io/part-of: irsa-webhook
{{ include "irsa-webhook.labels" . }}
{{- end -}}

{{/* The heal CronJob's labels. */}}
{{- define "irsa-webhook.auditLabels" -}}
app.kubernetes.io/component: audit
app.kubernetes.io/name: irsa-webhook-audit
app.kubernetes.io/part-of: irsa-webhook
{{ include "irsa-webhook.labels" . }}
{{- end -}}

{{/* The image: repository@digest, or repository:tag without a digest (tag defaults to the appVersion). */}}
{{- define "irsa-webhook.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
"true" when the heal CronJob is rendered: auditCronJob.enabled, or when null wherever the webhook may let a Pod
through unmutated (failurePolicy Ignore: knative at scale zero without the opt-in label), as in the bundles.
*/}}
{{- define "irsa-webhook.auditEnabled" -}}
{{- if kindIs "bool" .Values.auditCronJob.enabled -}}
{{ .Values.auditCronJob.enabled }}
{{- else -}}
{{ eq (include "irsa-webhook.failurePolicy" .) "Ignore" }}
{{- end -}}
{{- end -}}

{{/*
failurePolicy follows the profile, as in the bundles: Fail in classic mode (two warm replicas), with the opt-in label
(only labelled Pods wait) and in knative mode with a warm pod (minScale >= 1); Ignore for knative at scale zero,
where a cold start longer than the timeout must not block Pod creation.
*/}}
{{- define "irsa-webhook.failurePolicy" -}}
{{- if or (eq .Values.mode "classic") .Values.optInLabel (ge (int .Values.knative.minScale) 1) -}}
Fail
{{- else -}}
Ignore
{{- end -}}
{{- end -}}

{{/* The TLS Secret the webhook (classic) or the DomainMapping (knative) uses. */}}
{{- define "irsa-webhook.tlsSecret" -}}
{{- if and (eq .Values.certificates.source "existing") .Values.certificates.existing.secretName -}}
{{ .Values.certificates.existing.secretName }}
{{- else if eq .Values.mode "classic" -}}
irsa-webhook-certs
{{- else -}}
irsa-webhook-tls
{{- end -}}
{{- end -}}

{{/* The name the API server checks the serving certificate against. */}}
{{- define "irsa-webhook.host" -}}
{{- if eq .Values.mode "classic" -}}
irsa-webhook.{{ .Release.Namespace }}.svc
{{- else -}}
irsa-webhook.{{ .Values.knative.gatewayNamespace }}.svc
{{- end -}}
{{- end -}}

{{/* Pod placement shared by every pod of the chart: nodeSelector and tolerations (indented by the caller). */}}
{{- define "irsa-webhook.placement" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The container hardening of every container the chart runs (the restricted Pod Security Standard). */}}
{{- define "irsa-webhook.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  privileged: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Values the schema cannot relate to each other: a clear message naming the values, or nothing. */}}
{{- define "irsa-webhook.validate" -}}
{{- if gt (int .Values.knative.minScale) (int .Values.knative.maxScale) -}}
{{- fail (printf "knative.minScale (%v) must not exceed knative.maxScale (%v)" .Values.knative.minScale .Values.knative.maxScale) -}}
{{- end -}}
{{- if and (eq .Values.mode "classic") .Values.classic.podDisruptionBudget.enabled (ge (int .Values.classic.podDisruptionBudget.minAvailable) (int .Values.classic.replicas)) -}}
{{- fail (printf "classic.podDisruptionBudget.minAvailable (%v) must be less than classic.replicas (%v), or no node could ever be drained; set classic.podDisruptionBudget.enabled=false for a single replica" .Values.classic.podDisruptionBudget.minAvailable .Values.classic.replicas) -}}
{{- end -}}
{{- range $key, $_ := .Values.podAnnotations -}}
{{- if hasPrefix "autoscaling.knative.dev/" $key -}}
{{- fail (printf "podAnnotations.%s: the Knative autoscaling annotations come from knative.minScale and knative.maxScale" $key) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.certificates.source "existing") .Values.certificates.existing.caBundle -}}
{{- $pem := b64dec .Values.certificates.existing.caBundle -}}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $pem) -}}
{{- fail "certificates.existing.caBundle must be the base64 of a PEM CA certificate (-----BEGIN CERTIFICATE-----)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The certificate Job's labels. */}}
{{- define "irsa-webhook.certsLabels" -}}
app.kubernetes.io/name: irsa-webhook-certs
app.kubernetes.io/component: certs
app.kubernetes.io/part-of: irsa-webhook
{{ include "irsa-webhook.labels" . }}
{{- end -}}

{{/*
The pod template of the certificate Job and its renew CronJob (one for both, as in deploy/components/certs):
`irsa-webhook certs --job` in the webhook's image, with the release's namespace and webhook configuration when they
are not the command's defaults (irsa-system, irsa-webhook).
*/}}
{{- define "irsa-webhook.certsPod" -}}
metadata:
  labels:
    app.kubernetes.io/name: irsa-webhook-certs
    app.kubernetes.io/component: certs
    app.kubernetes.io/part-of: irsa-webhook
spec:
  serviceAccountName: irsa-webhook-certs
  automountServiceAccountToken: true # it writes the Secrets and caBundle with its own token
  enableServiceLinks: false
  restartPolicy: Never
  {{- include "irsa-webhook.placement" . | nindent 2 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: certs
      image: {{ include "irsa-webhook.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command:
        [node, --max-semi-space-size=8, --optimize-for-size, dist/cli.js, certs, --job
        {{- if ne .Release.Namespace "irsa-system" }}, --namespace, {{ .Release.Namespace }}{{ end }}
        {{- if ne (include "irsa-webhook.clusterName" .) "irsa-webhook" }}, --webhook, {{ include "irsa-webhook.clusterName" . }}{{ end }}]
      resources:
        {{- toYaml .Values.certificates.job.resources | nindent 8 }}
      {{- include "irsa-webhook.containerSecurity" . | nindent 6 }}
{{- end -}}
