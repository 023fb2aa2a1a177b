#!/usr/bin/env bash
# TLS for irsa-webhook made outside the cluster, both shapes: the same objects `irsa-webhook certs` (the bundles'
# certificate Job) makes in the cluster. Creates (or reuses) a private CA, signs a serving certificate for the exact
# name the API server checks, writes the TLS Secret, and patches caBundle into every webhook of the
# MutatingWebhookConfiguration. Idempotent: re-running keeps the CA (caBundle unchanged) and issues a new leaf.
# The Secrets carry the label app.kubernetes.io/managed-by=irsa-webhook-certs, so the renew CronJob (if installed)
# renews them; use it with a bundle that has no certificate Job, or remove the Job's component (docs/deploy.md).
#
#   ./generate-certs.sh --mode classic                 # SAN irsa-webhook.irsa-system.svc, Secret irsa-webhook-certs
#   ./generate-certs.sh --mode knative                 # SAN irsa-webhook.kourier-system.svc, Secret irsa-webhook-tls
#   ./generate-certs.sh --mode knative --gateway-namespace knative-serving   # Knative Operator installs
#   ./generate-certs.sh --mode classic --dry-run --out /tmp/certs            # files + printed YAML, no cluster
#
# Needs bash, openssl and kubectl. See docs/deploy.md and docs/knative.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: generate-certs.sh --mode classic|knative [options]
  --mode classic|knative     classic: the Deployment serves TLS; knative: Kourier serves it for the DomainMapping
  --namespace NS             the webhook's namespace (default irsa-system); the Secrets live here
  --service NAME             Service / alias Service name (default irsa-webhook)
  --gateway-namespace NS     knative: the gateway's namespace (default kourier-system; knative-serving for Operator)
  --secret NAME              TLS Secret (default irsa-webhook-certs classic, irsa-webhook-tls knative)
  --webhook NAME             MutatingWebhookConfiguration (default irsa-webhook)
  --webhook-file FILE        --dry-run: the MWC YAML to patch (default deploy|knative/base/webhook.yaml)
  --out DIR                  keep the files here (default: .dev-certs/<mode> with --dry-run, else a temp dir)
  --days N                   leaf validity (default 365)       --ca-days N   CA validity (default 3650)
  --rotate-ca                make a new CA (caBundle then carries new + old CA for this run)
  --dry-run                  touch no cluster: write secret.yaml, ca-secret.yaml, webhook.yaml to --out and print
EOF
}

die() { echo "generate-certs.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

MODE='' NAMESPACE=irsa-system SERVICE=irsa-webhook GATEWAY_NAMESPACE=kourier-system SECRET='' WEBHOOK=irsa-webhook
WEBHOOK_FILE='' OUT='' DAYS=365 CA_DAYS=3650 ROTATE_CA=false DRY_RUN=false CA_SECRET=irsa-webhook-ca
MANAGED_BY=app.kubernetes.io/managed-by=irsa-webhook-certs
KUBECTL=${KUBECTL:-kubectl}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

parse_args() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --mode) MODE=${2:?}; shift 2 ;;
      --namespace) NAMESPACE=${2:?}; shift 2 ;;
      --service) SERVICE=${2:?}; shift 2 ;;
      --gateway-namespace) GATEWAY_NAMESPACE=${2:?}; shift 2 ;;
      --secret) SECRET=${2:?}; shift 2 ;;
      --webhook) WEBHOOK=${2:?}; shift 2 ;;
      --webhook-file) WEBHOOK_FILE=${2:?}; shift 2 ;;
      --out) OUT=${2:?}; shift 2 ;;
      --days) DAYS=${2:?}; shift 2 ;;
      --ca-days) CA_DAYS=${2:?}; shift 2 ;;
      --rotate-ca) ROTATE_CA=true; shift ;;
      --dry-run) DRY_RUN=true; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  case $MODE in
    classic) HOST=$SERVICE.$NAMESPACE.svc; SECRET=${SECRET:-irsa-webhook-certs} ;;
    knative) HOST=$SERVICE.$GATEWAY_NAMESPACE.svc; SECRET=${SECRET:-irsa-webhook-tls} ;;
    *) usage >&2; die "--mode must be classic or knative" ;;
  esac
  [[ $DAYS =~ ^[0-9]+$ && $CA_DAYS =~ ^[0-9]+$ ]] || die "--days and --ca-days take whole numbers"
  WEBHOOK_FILE=${WEBHOOK_FILE:-$SCRIPT_DIR/$([[ $MODE == classic ]] && echo deploy || echo knative)/base/webhook.yaml}
}

prepare_out() {
  if [[ -z $OUT ]]; then
    if $DRY_RUN; then OUT=.dev-certs/$MODE; else OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT; fi
  fi
  mkdir -p "$OUT"
  chmod 700 "$OUT"
}

# Reuses the CA from --out, else (not --dry-run) from the cluster Secret irsa-webhook-ca, else makes one.
ensure_ca() {
  if [[ ! -f $OUT/ca.crt ]] && ! $DRY_RUN; then fetch_cluster_ca; fi
  if $ROTATE_CA && [[ -f $OUT/ca.crt ]]; then mv "$OUT/ca.crt" "$OUT/ca-previous.crt"; rm -f "$OUT/ca.key"; fi
  if [[ ! -f $OUT/ca.crt || ! -f $OUT/ca.key ]]; then
    log "creating a new CA (valid $CA_DAYS days)"
    CA_STATE=new
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/ca.key" 2>/dev/null
    openssl req -x509 -new -sha256 -key "$OUT/ca.key" -days "$CA_DAYS" -subj "/CN=irsa-webhook-ca" \
      -config <(printf '%s\n' '[req]' 'distinguished_name=dn' '[dn]' '[v3_ca]' \
        'basicConstraints=critical,CA:TRUE,pathlen:0' 'keyUsage=critical,keyCertSign,cRLSign' \
        'subjectKeyIdentifier=hash') -extensions v3_ca -out "$OUT/ca.crt"
  else
    CA_STATE=reused
    log "reusing the CA in $OUT (--rotate-ca makes a new one)"
    [[ $(openssl x509 -in "$OUT/ca.crt" -noout -pubkey) == $(openssl pkey -in "$OUT/ca.key" -pubout) ]] ||
      die "$OUT/ca.key does not belong to $OUT/ca.crt"
  fi
  openssl x509 -in "$OUT/ca.crt" -noout -checkend $((DAYS * 86400)) >/dev/null ||
    die "the CA expires before a $DAYS-day leaf would; run again with --rotate-ca"
}

fetch_cluster_ca() {
  local crt key
  crt=$("$KUBECTL" -n "$NAMESPACE" get secret "$CA_SECRET" -o 'jsonpath={.data.ca\.crt}' 2>/dev/null) || return 0
  key=$("$KUBECTL" -n "$NAMESPACE" get secret "$CA_SECRET" -o 'jsonpath={.data.ca\.key}' 2>/dev/null) || return 0
  [[ -n $crt && -n $key ]] || return 0
  printf '%s' "$crt" | openssl base64 -d -A >"$OUT/ca.crt"
  printf '%s' "$key" | openssl base64 -d -A >"$OUT/ca.key"
  log "found the CA in Secret $NAMESPACE/$CA_SECRET"
}

# openssl x509 -req drops the CSR's extensions, so the SAN/EKU go in with -extfile.
sign_leaf() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/tls.key" 2>/dev/null
  openssl req -new -sha256 -key "$OUT/tls.key" -subj "/CN=$HOST" -out "$OUT/tls.csr"
  printf '%s\n' "subjectAltName=DNS:$HOST,DNS:$HOST.cluster.local" 'extendedKeyUsage=serverAuth' \
    'keyUsage=critical,digitalSignature,keyEncipherment' 'basicConstraints=critical,CA:FALSE' \
    'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' >"$OUT/tls.ext"
  openssl x509 -req -sha256 -in "$OUT/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -extfile "$OUT/tls.ext" -out "$OUT/tls.crt" 2>/dev/null
  openssl verify -CAfile "$OUT/ca.crt" "$OUT/tls.crt" >/dev/null || die "the new certificate does not verify"
  chmod 600 "$OUT"/*.key
}

# Both Secrets carry the label `irsa-webhook certs` (the in-cluster Job) reads as "ours": it renews them too.
write_secrets() {
  "$KUBECTL" create secret tls "$SECRET" -n "$NAMESPACE" --cert="$OUT/tls.crt" --key="$OUT/tls.key" \
    --dry-run=client -o yaml | "$KUBECTL" label --local -f - "$MANAGED_BY" -o yaml >"$OUT/secret.yaml"
  "$KUBECTL" create secret generic "$CA_SECRET" -n "$NAMESPACE" --from-file=ca.crt="$OUT/ca.crt" \
    --from-file=ca.key="$OUT/ca.key" --dry-run=client -o yaml |
    "$KUBECTL" label --local -f - "$MANAGED_BY" -o yaml >"$OUT/ca-secret.yaml"
  chmod 600 "$OUT/secret.yaml" "$OUT/ca-secret.yaml"
  if ! $DRY_RUN; then
    "$KUBECTL" get namespace "$NAMESPACE" >/dev/null || die "namespace $NAMESPACE not found: apply the manifests first"
    "$KUBECTL" apply -f "$OUT/ca-secret.yaml" >&2
    "$KUBECTL" apply -f "$OUT/secret.yaml" >&2
  fi
}

# One JSON-patch op per webhook, so every webhook of the configuration trusts the CA.
ca_bundle_patch() {
  local bundle names ops='' i=0
  bundle=$(cat "$OUT/ca.crt" ${CA_PREVIOUS:+"$CA_PREVIOUS"} | openssl base64 -A)
  names=$("$@" -o 'jsonpath={range .webhooks[*]}{.name}{"\n"}{end}')
  [[ -n $names ]] || die "no webhooks found in $WEBHOOK"
  while IFS= read -r _name; do
    ops+="${ops:+,}{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$bundle\"}"
    i=$((i + 1))
  done <<<"$names"
  PATCHED=$i
  PATCH="[$ops]"
}

patch_webhook() {
  if $DRY_RUN; then
    ca_bundle_patch "$KUBECTL" patch --local -f "$WEBHOOK_FILE" --type=merge -p '{}'
    "$KUBECTL" patch --local -f "$WEBHOOK_FILE" --type=json -p "$PATCH" -o yaml >"$OUT/webhook.yaml"
  else
    "$KUBECTL" get mutatingwebhookconfiguration "$WEBHOOK" >/dev/null ||
      die "MutatingWebhookConfiguration $WEBHOOK not found: apply the manifests, then run this again (the CA is kept)"
    ca_bundle_patch "$KUBECTL" get mutatingwebhookconfiguration "$WEBHOOK"
    "$KUBECTL" patch mutatingwebhookconfiguration "$WEBHOOK" --type=json -p "$PATCH" >&2
  fi
}

report() {
  log "mode $MODE: certificate for DNS:$HOST, DNS:$HOST.cluster.local (EKU serverAuth), valid $DAYS days"
  log "CA $CA_STATE, $(openssl x509 -in "$OUT/ca.crt" -noout -fingerprint -sha256)"
  log "Secret $NAMESPACE/$SECRET (TLS) and $NAMESPACE/$CA_SECRET (the CA, reused on the next run)"
  log "caBundle set on $PATCHED webhook(s) of MutatingWebhookConfiguration $WEBHOOK"
  if $DRY_RUN; then
    log "dry run: files in $OUT (secret.yaml, ca-secret.yaml, webhook.yaml); the TLS Secret and webhook follow"
    cat "$OUT/secret.yaml"
    echo '---'
    cat "$OUT/webhook.yaml"
  elif [[ $MODE == classic ]]; then
    log "the pods reload the certificate by themselves (Secret mounted without subPath), within ~2 minutes"
  else
    log "Kourier picks up the Secret by itself; check: kubectl -n $NAMESPACE get domainmapping $HOST"
  fi
}

main() {
  command -v openssl >/dev/null || die "openssl not found"
  command -v "$KUBECTL" >/dev/null || die "kubectl not found"
  parse_args "$@"
  prepare_out
  CA_PREVIOUS=''
  ensure_ca
  [[ $ROTATE_CA == true && -f $OUT/ca-previous.crt ]] && CA_PREVIOUS=$OUT/ca-previous.crt
  sign_leaf
  write_secrets
  patch_webhook
  report
}

main "$@"
