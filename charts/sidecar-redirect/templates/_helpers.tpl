{{/*
Named templates other charts can include. Pass a context whose .Values are this chart's values, .Capabilities
(for proxy.nativeSidecar=auto), and, for the UID check, the app container's runAsUser as .appRunAsUser, e.g.
  initContainers:
    {{- include "sidecar-redirect.initContainers" (dict "Values" (index .Values "sidecar-redirect") "Release" .Release "Capabilities" .Capabilities "appRunAsUser" 1000) | nindent 4 }}
    # your own init containers here: they start once the proxy is ready (native sidecar)
  containers:
    {{- include "sidecar-redirect.containers" (dict "Values" (index .Values "sidecar-redirect") "Release" .Release "Capabilities" .Capabilities) | nindent 4 }}
    # your app here, after the proxy: in the classic layout it starts once the proxy is ready
*/}}

{{- define "sidecar-redirect.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default (include "sidecar-redirect.appVersion" .) }}
{{- end }}

{{/* The standard labels, on every object this chart renders. */}}
{{- define "sidecar-redirect.labels" -}}
helm.sh/chart: {{ printf "sidecar-redirect-%s" .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: sidecar-redirect
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "sidecar-redirect.appVersion" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* "true" when the proxy is a native sidecar: asked for, or auto on Kubernetes 1.29 and later. */}}
{{- define "sidecar-redirect.native" -}}
{{- $native := .Values.proxy.nativeSidecar -}}
{{- if eq (toString $native) "auto" -}}
{{- if not .Capabilities -}}
{{- fail "sidecar-redirect: proxy.nativeSidecar=auto needs the Kubernetes version: pass \"Capabilities\" .Capabilities in the include context, or set proxy.nativeSidecar to true or false" -}}
{{- end -}}
{{- $native = semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version -}}
{{- end -}}
{{- if $native }}true{{ end -}}
{{- end }}

{{/* Refusals that a schema cannot express: they need the release namespace, or two values at once. */}}
{{- define "sidecar-redirect.guards" -}}
{{- if and (eq .Release.Namespace "kube-system") (not .Values.allowKubeSystem) -}}
{{- fail "sidecar-redirect: refusing to render into kube-system: capturing the traffic of cluster components (DNS, ingress, the CNI) can cut the cluster off from itself. Set allowKubeSystem=true if you mean it." -}}
{{- end -}}
{{- if .Values.cni.enabled -}}
{{- if eq .Values.method "mark" -}}
{{- fail "sidecar-redirect: cni.enabled with method mark: the proxy needs CAP_NET_ADMIN to set SO_MARK, and CNI mode keeps every capability out of the pod. Use method uid or explicit, or cgroup with classifier.enabled=true." -}}
{{- end -}}
{{- if eq .Values.inbound.interceptionMode "TPROXY" -}}
{{- fail "sidecar-redirect: cni.enabled with inbound.interceptionMode TPROXY: the proxy needs CAP_NET_ADMIN for IP_TRANSPARENT, and CNI mode keeps every capability out of the pod. Use REDIRECT." -}}
{{- end -}}
{{- if and (eq .Values.method "cgroup") (not .Values.classifier.enabled) -}}
{{- fail "sidecar-redirect: cni.enabled with method cgroup needs classifier.enabled=true: without the classifier the proxy's agent starts as root with SETUID, SETGID and SETPCAP to join the net_cls group, and CNI mode keeps every capability out of the pod." -}}
{{- end -}}
{{- if or (eq (int .Values.cni.validateRunAsUser) (int .Values.proxy.uid)) (eq (int .Values.cni.validateRunAsUser) (int (.Values.proxy.gid | default 0))) -}}
{{- fail (printf "sidecar-redirect: cni.validateRunAsUser %d is the proxy's UID or GID, whose traffic is exempt: validate must run as an identity the rules capture." (int .Values.cni.validateRunAsUser)) -}}
{{- end -}}
{{- end -}}
{{- if and (has .Values.method (list "uid" "explicit")) (hasKey . "appRunAsUser") -}}
{{- if eq (int .appRunAsUser) (int .Values.proxy.uid) -}}
{{- fail (printf "sidecar-redirect: the app runs as UID %d, the proxy UID: with method uid all of its traffic would escape the proxy. Give the app or the proxy another UID." (int .appRunAsUser)) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
A container's env with extraEnv laid over it: an entry extraEnv names is replaced by extraEnv's, and the rest of
extraEnv follows, so every container of ours takes it and no name appears twice. Pass (dict "Values" .Values
"entries" <a YAML list of env entries>).
*/}}
{{- define "sidecar-redirect.withExtraEnv" -}}
{{- $extra := list -}}
{{- range .Values.extraEnv }}{{ $extra = append $extra .name }}{{ end -}}
{{- range (.entries | fromYamlArray) }}
{{- if not (has .name $extra) }}
- {{ toJson . }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
- {{ toJson . }}
{{- end }}
{{- end }}

{{/* The env every entrypoint command of the pod reads: every capture setting (templates/_settings.tpl), then extraEnv. */}}
{{- define "sidecar-redirect.env" -}}
{{- include "sidecar-redirect.withExtraEnv" (dict "Values" .Values "entries" (include "sidecar-redirect.settingsEnv" .)) }}
{{- end }}

{{/*
The entry's settings for the CNI plugin, as JSON: the same settings the init container gets (extraEnv's included),
but those the node takes elsewhere (sidecar-redirect.cniSettingNames leaves them out).
*/}}
{{- define "sidecar-redirect.cniSettings" -}}
{{- $names := include "sidecar-redirect.cniSettingNames" . | fromJsonArray -}}
{{- $settings := dict -}}
{{- range (include "sidecar-redirect.env" . | fromYamlArray) -}}
{{- if and (has .name $names) (hasKey . "value") }}{{ $_ := set $settings .name (toString .value) }}{{ end -}}
{{- end -}}
{{- toJson $settings -}}
{{- end }}

{{/* In CNI mode, what a pod must carry to be captured (unless cni.captureAll): put it in the pod's annotations. */}}
{{- define "sidecar-redirect.annotations" -}}
{{- if and .Values.enabled .Values.cni.enabled }}
sidecar-redirect.io/capture: enabled
{{- end }}
{{- end }}

{{/*
CNI mode's first init container: `entrypoint validate` proves from inside the pod, with no capability at all, that
the node's plugin captured its traffic (exit 9 if not, and the pod does not start). It decides the pod's settings as
the node did: these values plus the pod's annotations (a downward API volume) that cni.allowedAnnotations lets count.
*/}}
{{- define "sidecar-redirect.validateContainer" -}}
- name: sidecar-redirect-validate
  image: {{ include "sidecar-redirect.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["validate"]
  env:
    {{- include "sidecar-redirect.withExtraEnv" (dict "Values" .Values "entries" (include "sidecar-redirect.validateEntries" .)) | nindent 4 }}
  volumeMounts:
    - { name: sidecar-redirect-pod, mountPath: /etc/sidecar-redirect/pod, readOnly: true }
  resources:
    {{- toYaml .Values.resources.init | nindent 4 }}
  securityContext:
    runAsUser: {{ .Values.cni.validateRunAsUser }}
    runAsGroup: {{ .Values.cni.validateRunAsUser }}
    runAsNonRoot: true
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: { drop: [ALL] }
    seccompProfile: { type: RuntimeDefault }
{{- end }}

{{- define "sidecar-redirect.validateEntries" -}}
{{ include "sidecar-redirect.settingsEnv" . }}
- { name: ISTIO_CNI_ALLOWED_ANNOTATIONS, value: {{ join "," .Values.cni.allowedAnnotations | quote }} }
- { name: ISTIO_POD_ANNOTATIONS_FILE, value: /etc/sidecar-redirect/pod/annotations }
{{- end }}

{{/* The init container: only NET_ADMIN and NET_RAW, read-only root filesystem; in CNI mode, validate instead. */}}
{{- define "sidecar-redirect.initContainer" -}}
{{- include "sidecar-redirect.guards" . -}}
{{- if and .Values.enabled .Values.cni.enabled }}
{{ include "sidecar-redirect.validateContainer" . }}
{{- else if .Values.enabled }}
- name: sidecar-redirect
  image: {{ include "sidecar-redirect.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["init"]
  env:
    {{- include "sidecar-redirect.env" . | nindent 4 }}
  resources:
    {{- toYaml .Values.resources.init | nindent 4 }}
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: { add: [NET_ADMIN, NET_RAW], drop: [ALL] }
    seccompProfile: { type: RuntimeDefault }
{{- end }}
{{- end }}

{{/* "true" when the proxy's image is this chart's (or proxy.agent says it holds our agent at /app/entrypoint). */}}
{{- define "sidecar-redirect.ownProxy" -}}
{{- if or (not .Values.proxy.image) (eq .Values.proxy.image (include "sidecar-redirect.image" .)) (eq (toString .Values.proxy.agent) "true") }}true{{ end -}}
{{- end }}

{{/* The proxy's probe as the kubelet runs it, for a proxy image without our `ready`: tcp, none, or the user's own. */}}
{{- define "sidecar-redirect.probe" -}}
{{- if kindIs "map" .Values.proxy.probe -}}
{{ toYaml .Values.proxy.probe }}
{{- else if eq .Values.proxy.probe "tcp" -}}
tcpSocket: { port: {{ .Values.proxy.port }} }
periodSeconds: 1
timeoutSeconds: 1
failureThreshold: {{ max 1 .Values.proxy.readyTimeoutSeconds }}
{{- end }}
{{- end }}

{{/*
The proxy container. With this chart's image (or one proxy.agent says holds our agent) it is started through the
agent and runs as the proxy UID with every capability dropped, except for method mark or TPROXY (the agent starts as root
to hand the proxy exactly CAP_NET_ADMIN) and method cgroup without the classifier (the agent starts as root to
join the net_cls group, then drops everything). Any other image is your proxy as it is: its own command (or
proxy.command and proxy.args), as the proxy UID with every capability dropped, probed on its port; methods that
need the agent are refused for it. As a native sidecar it is an init container that keeps running (restartPolicy
Always) and counts as started once its startupProbe passes; in the classic layout a postStart hook holds the next
container until the proxy listens.
*/}}
{{- define "sidecar-redirect.proxyContainer" -}}
{{- /* mark (SO_MARK) and TPROXY (IP_TRANSPARENT) need the agent to hand the proxy CAP_NET_ADMIN. */ -}}
{{- $netAdmin := or (eq .Values.method "mark") (eq .Values.inbound.interceptionMode "TPROXY") -}}
{{- $rootStart := or $netAdmin (and (eq .Values.method "cgroup") (not .Values.classifier.enabled)) -}}
{{- $native := include "sidecar-redirect.native" . -}}
{{- $own := include "sidecar-redirect.ownProxy" . -}}
{{- if and (not $own) (has .Values.method (list "mark" "cgroup")) -}}
{{- fail (printf "sidecar-redirect: method %s with proxy.image %s: the proxy must be started by this chart's agent (entrypoint run), which that image does not have. Build your proxy's image FROM this chart's image with your proxy in it and set proxy.agent=true and proxy.command, or use method uid." .Values.method .Values.proxy.image) -}}
{{- end -}}
{{- if and (not $own) (eq .Values.inbound.interceptionMode "TPROXY") -}}
{{- fail (printf "sidecar-redirect: inbound.interceptionMode TPROXY with proxy.image %s: the proxy must be started by this chart's agent (entrypoint run), which hands it CAP_NET_ADMIN for IP_TRANSPARENT and that image does not have. Build your proxy's image FROM this chart's image with your proxy in it and set proxy.agent=true and proxy.command, or use REDIRECT." .Values.proxy.image) -}}
{{- end -}}
{{- $command := .Values.proxy.command -}}
{{- if and $own (not $command) -}}
{{- /* This chart's stand-in relay; with mark it sets the SO_MARK itself. */ -}}
{{- $command = list "/usr/local/bin/node" "/app/dist/peer.mjs" "proxy" (toString .Values.proxy.port) -}}
{{- if eq .Values.method "mark" }}{{ $command = concat $command (list "--mark" (toString (int64 (first (splitList "/" .Values.mark))))) }}{{ end -}}
{{- end -}}
- name: proxy
  image: {{ .Values.proxy.image | default (include "sidecar-redirect.image" .) }}
  {{- if $own }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- end }}
  {{- if $native }}
  restartPolicy: Always
  {{- if $own }}
  # One run of `ready` waits up to proxy.readyTimeoutSeconds itself; if the proxy is still not listening, the
  # kubelet restarts it.
  startupProbe:
    exec: { command: ["/app/entrypoint", "ready"] }
    periodSeconds: 1
    timeoutSeconds: {{ add .Values.proxy.readyTimeoutSeconds 5 }}
    failureThreshold: 1
  {{- else if ne (toString .Values.proxy.probe) "none" }}
  startupProbe:
    {{- include "sidecar-redirect.probe" . | nindent 4 }}
  {{- end }}
  {{- else if and .Values.proxy.holdApplicationUntilReady $own }}
  # The kubelet starts the next container only when this hook has returned.
  lifecycle:
    postStart:
      exec: { command: ["/app/entrypoint", "ready"] }
  {{- end }}
  {{- if and (not $own) (ne (toString .Values.proxy.probe) "none") }}
  readinessProbe:
    {{- include "sidecar-redirect.probe" . | nindent 4 }}
  {{- end }}
  {{- if $own }}
  command: ["/app/entrypoint"]
  args: {{ concat (list "run" "--") $command .Values.proxy.args | toJson }}
  env:
    {{- include "sidecar-redirect.withExtraEnv" (dict "Values" .Values "entries" (include "sidecar-redirect.agentEntries" .)) | nindent 4 }}
  {{- else }}
  {{- with $command }}
  command: {{ toJson . }}
  {{- end }}
  {{- with .Values.proxy.args }}
  args: {{ toJson . }}
  {{- end }}
  {{- end }}
  resources:
    {{- toYaml .Values.resources.proxy | nindent 4 }}
  securityContext:
    {{- if and $own $rootStart }}
    runAsUser: 0
    runAsNonRoot: false
    {{- else }}
    runAsUser: {{ .Values.proxy.uid }}
    runAsGroup: {{ .Values.proxy.gid | default .Values.proxy.uid }}
    runAsNonRoot: true
    {{- end }}
    allowPrivilegeEscalation: false
    {{- if .Values.proxy.readOnlyRootFilesystem }}
    readOnlyRootFilesystem: true
    {{- end }}
    capabilities:
      drop: [ALL]
      {{- if and $own $netAdmin }}
      add: [NET_ADMIN, SETUID, SETGID, SETPCAP]
      {{- else if and $own $rootStart }}
      add: [SETUID, SETGID, SETPCAP]
      {{- end }}
    seccompProfile: { type: RuntimeDefault }
  {{- if and $own (eq .Values.method "cgroup") }}
  volumeMounts:
    {{- if .Values.classifier.enabled }}
    - { name: sidecar-redirect-classifier, mountPath: {{ .Values.classifier.socketDir | quote }}, readOnly: true }
    {{- else }}
    - { name: sidecar-redirect-net-cls, mountPath: {{ .Values.classifier.netClsRoot | quote }} }
    {{- end }}
  {{- end }}
{{- end }}

{{/* What the proxy's agent (run, ready) reads: the capture settings and its own. */}}
{{- define "sidecar-redirect.agentEntries" -}}
{{ include "sidecar-redirect.settingsEnv" . }}
- { name: ISTIO_AGENT_RESTART, value: {{ .Values.proxy.restart | quote }} }
- { name: ISTIO_DRAIN_SECONDS, value: {{ int64 .Values.proxy.drainSeconds | quote }} }
- { name: ISTIO_READY_SECONDS, value: {{ int64 .Values.proxy.readyTimeoutSeconds | quote }} }
{{- if eq .Values.method "cgroup" }}
{{- if .Values.classifier.enabled }}
- { name: ISTIO_CLASSIFIER_SOCKET, value: {{ printf "%s/classifier.sock" .Values.classifier.socketDir | quote }} }
{{- else }}
- { name: ISTIO_NET_CLS_ROOT, value: {{ .Values.classifier.netClsRoot | quote }} }
{{- end }}
{{- end }}
{{- end }}

{{/*
The classic layout's hold for a proxy image without our `ready`: right after the proxy, a container of ours whose
postStart hook returns once the proxy accepts connections (the pod's network is shared), then idles.
*/}}
{{- define "sidecar-redirect.holdContainer" -}}
- name: sidecar-redirect-hold
  image: {{ include "sidecar-redirect.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["hold"]
  env:
    {{- include "sidecar-redirect.withExtraEnv" (dict "Values" .Values "entries" (include "sidecar-redirect.agentEntries" .)) | nindent 4 }}
  lifecycle:
    postStart:
      exec: { command: ["/app/entrypoint", "ready"] }
  resources:
    {{- toYaml .Values.resources.init | nindent 4 }}
  securityContext:
    runAsUser: {{ .Values.cni.validateRunAsUser }}
    runAsGroup: {{ .Values.cni.validateRunAsUser }}
    runAsNonRoot: true
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: { drop: [ALL] }
    seccompProfile: { type: RuntimeDefault }
{{- end }}

{{/* The init containers, in order: the redirect init, then the proxy when it is a native sidecar. */}}
{{- define "sidecar-redirect.initContainers" -}}
{{- include "sidecar-redirect.initContainer" . | trim }}
{{- if and .Values.enabled (include "sidecar-redirect.native" .) }}
{{ include "sidecar-redirect.proxyContainer" . }}
{{- end }}
{{- end }}

{{/* The proxy in the classic layout (nothing for a native sidecar), and its hold if needed: list them before the app. */}}
{{- define "sidecar-redirect.containers" -}}
{{- if and .Values.enabled (not (include "sidecar-redirect.native" .)) }}
{{- include "sidecar-redirect.proxyContainer" . }}
{{- if and .Values.proxy.holdApplicationUntilReady (not (include "sidecar-redirect.ownProxy" .)) }}
{{ include "sidecar-redirect.holdContainer" . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The volumes the templates mount: the pod's annotations for validate (CNI mode), the cgroup method's (through our agent). */}}
{{- define "sidecar-redirect.volumes" -}}
{{- if and .Values.enabled .Values.cni.enabled }}
- name: sidecar-redirect-pod
  downwardAPI:
    items:
      - { path: annotations, fieldRef: { fieldPath: metadata.annotations } }
{{- end }}
{{- if and (eq .Values.method "cgroup") (include "sidecar-redirect.ownProxy" .) }}
{{- if .Values.classifier.enabled }}
- name: sidecar-redirect-classifier
  hostPath: { path: {{ .Values.classifier.socketDir | quote }}, type: Directory }
{{- else }}
- name: sidecar-redirect-net-cls
  hostPath: { path: {{ .Values.classifier.netClsRoot | quote }}, type: Directory }
{{- end }}
{{- end }}
{{- end }}

{{/* The webhook's names: its Service (the name its certificate is for) and its TLS Secret. */}}
{{- define "sidecar-redirect.webhookName" -}}
{{ printf "%s-webhook" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What the webhook reads beyond the capture settings: the injector's settings, from the same values as the templates. */}}
{{- define "sidecar-redirect.injectorEnv" -}}
{{- $layout := dict "auto" "auto" "true" "native" "false" "classic" -}}
- { name: ISTIO_INJECT_IMAGE, value: {{ include "sidecar-redirect.image" . | quote }} }
- { name: ISTIO_INJECT_PULL_POLICY, value: {{ .Values.image.pullPolicy | quote }} }
- { name: ISTIO_INJECT_MODE, value: {{ ternary "cni" "init" .Values.cni.enabled | quote }} }
- { name: ISTIO_INJECT_LAYOUT, value: {{ index $layout (toString .Values.proxy.nativeSidecar) | quote }} }
- { name: ISTIO_INJECT_KUBE_VERSION, value: {{ .Capabilities.KubeVersion.Version | quote }} }
- { name: ISTIO_INJECT_PROXY_IMAGE, value: {{ .Values.proxy.image | quote }} }
- { name: ISTIO_INJECT_PROXY_COMMAND, value: {{ ternary (toJson .Values.proxy.command) "" (gt (len .Values.proxy.command) 0) | quote }} }
- { name: ISTIO_INJECT_PROXY_ARGS, value: {{ ternary (toJson .Values.proxy.args) "" (gt (len .Values.proxy.args) 0) | quote }} }
- { name: ISTIO_INJECT_PROXY_AGENT, value: {{ .Values.proxy.agent | toString | quote }} }
- { name: ISTIO_INJECT_PROXY_PROBE, value: {{ ternary (toJson .Values.proxy.probe) (toString .Values.proxy.probe) (kindIs "map" .Values.proxy.probe) | quote }} }
- { name: ISTIO_INJECT_PROXY_READ_ONLY_ROOT, value: {{ .Values.proxy.readOnlyRootFilesystem | quote }} }
- { name: ISTIO_INJECT_HOLD, value: {{ .Values.proxy.holdApplicationUntilReady | quote }} }
- { name: ISTIO_INJECT_RESOURCES, value: {{ ternary (toJson .Values.resources.init) "" (not (empty .Values.resources.init)) | quote }} }
- { name: ISTIO_INJECT_PROXY_RESOURCES, value: {{ ternary (toJson .Values.resources.proxy) "" (not (empty .Values.resources.proxy)) | quote }} }
- { name: ISTIO_INJECT_APP_CAPABILITIES, value: {{ .Values.webhook.appCapabilities | quote }} }
- { name: ISTIO_INJECT_HELPER_UID, value: {{ .Values.cni.validateRunAsUser | quote }} }
- { name: ISTIO_INJECT_ANNOTATIONS, value: {{ include "sidecar-redirect.injectAnnotations" . | quote }} }
- { name: ISTIO_AGENT_RESTART, value: {{ .Values.proxy.restart | quote }} }
- { name: ISTIO_DRAIN_SECONDS, value: {{ .Values.proxy.drainSeconds | quote }} }
- { name: ISTIO_READY_SECONDS, value: {{ .Values.proxy.readyTimeoutSeconds | quote }} }
- { name: ISTIO_NET_CLS_ROOT, value: {{ .Values.classifier.netClsRoot | quote }} }
{{- if and (eq .Values.method "cgroup") .Values.classifier.enabled }}
- { name: ISTIO_CLASSIFIER_SOCKET, value: {{ printf "%s/classifier.sock" .Values.classifier.socketDir | quote }} }
{{- end }}
{{- end }}

{{/*
The settings a pod's annotations may set through the webhook. In CNI mode the node's plugin decides which capture
settings count (cni.allowedAnnotations) and refuses a pod with any other, so the webhook takes that same list for
them: one choice, one meaning, and a pod the node would refuse is refused at admission instead. The injector's own
settings (below, as the injector's table marks them) come from webhook.annotations in both modes.
*/}}
{{- define "sidecar-redirect.injectAnnotations" -}}
{{- $own := include "sidecar-redirect.injectorAnnotationNames" . | fromJsonArray -}}
{{- $names := list -}}
{{- range .Values.webhook.annotations -}}
{{- if or (not $.Values.cni.enabled) (has . $own) }}{{ $names = append $names . }}{{ end -}}
{{- end -}}
{{- if .Values.cni.enabled -}}
{{- range .Values.cni.allowedAnnotations }}{{ if ne . "capture" }}{{ $names = append $names . }}{{ end }}{{ end -}}
{{- end -}}
{{- join "," (uniq $names) -}}
{{- end -}}

{{/* The webhook's env: the capture settings, the injector's (above) and its own. */}}
{{- define "sidecar-redirect.webhookEntries" -}}
{{ include "sidecar-redirect.settingsEnv" . }}
{{ include "sidecar-redirect.injectorEnv" . }}
- { name: ISTIO_WEBHOOK_PORT, value: "8443" }
- { name: ISTIO_WEBHOOK_CERT, value: /etc/sidecar-redirect/tls/tls.crt }
- { name: ISTIO_WEBHOOK_KEY, value: /etc/sidecar-redirect/tls/tls.key }
- { name: ISTIO_WEBHOOK_REQUEST_SECONDS, value: {{ int64 .Values.webhook.timeoutSeconds | quote }} }
- { name: ISTIO_WEBHOOK_MAX_BYTES, value: {{ int64 .Values.webhook.maxRequestBytes | quote }} }
- { name: ISTIO_WEBHOOK_CERT_CHECK_SECONDS, value: {{ int64 .Values.webhook.certCheckSeconds | quote }} }
{{- end }}

{{/* The node classifier's env. */}}
{{- define "sidecar-redirect.classifierEntries" -}}
- { name: ISTIO_CLASSIFIER_SOCKET, value: {{ printf "%s/classifier.sock" .Values.classifier.socketDir | quote }} }
- { name: ISTIO_CLASSIFIER_UIDS, value: {{ int64 .Values.proxy.uid | quote }} }
- { name: ISTIO_CLASSIFIER_CLASSIDS, value: {{ .Values.netClsId | quote }} }
- { name: ISTIO_NET_CLS_ROOT, value: {{ .Values.classifier.netClsRoot | quote }} }
- { name: ISTIO_LOG_FORMAT, value: {{ .Values.logFormat | quote }} }
{{- end }}

{{/* CNI mode: the installer's env (the entry it writes into the host's conflist carries the pods' settings). */}}
{{- define "sidecar-redirect.installerEntries" -}}
- { name: ISTIO_CNI_CONF_DIR, value: /host/etc/cni/net.d }
- { name: ISTIO_CNI_BIN_DIR, value: /host/opt/cni/bin }
- { name: ISTIO_NODE_AGENT_SOCKET, value: {{ printf "%s/agent.sock" .Values.cni.socketDir | quote }} }
- { name: ISTIO_CNI_SETTINGS, value: {{ include "sidecar-redirect.cniSettings" . | quote }} }
- { name: ISTIO_CNI_CAPTURE_ALL, value: {{ .Values.cni.captureAll | quote }} }
- { name: ISTIO_CNI_ALLOWED_ANNOTATIONS, value: {{ join "," .Values.cni.allowedAnnotations | quote }} }
- { name: ISTIO_CNI_EXCLUDE_NAMESPACES, value: {{ join "," .Values.cni.excludeNamespaces | quote }} }
- { name: ISTIO_CNI_CHECK_SECONDS, value: {{ int64 .Values.cni.checkSeconds | quote }} }
- { name: ISTIO_LOG_FORMAT, value: {{ .Values.logFormat | quote }} }
{{- end }}

{{/* CNI mode: the node agent's env. */}}
{{- define "sidecar-redirect.nodeAgentEntries" -}}
- { name: ISTIO_NODE_AGENT_SOCKET, value: {{ printf "%s/agent.sock" .Values.cni.socketDir | quote }} }
- { name: ISTIO_LOG_FORMAT, value: {{ .Values.logFormat | quote }} }
- { name: ISTIO_NODE_AGENT_RECHECK_SECONDS, value: {{ int64 .Values.cni.recheckSeconds | quote }} }
{{- if .Values.cni.concurrency }}
- { name: ISTIO_NODE_AGENT_CONCURRENCY, value: {{ int64 .Values.cni.concurrency | quote }} }
{{- end }}
{{- if .Values.cni.metricsPort }}
- { name: ISTIO_NODE_AGENT_METRICS, value: {{ printf ":%d/metrics" (int64 .Values.cni.metricsPort) | quote }} }
{{- end }}
{{- end }}
