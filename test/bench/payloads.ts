/**
 * Bench payloads: AdmissionReview bodies built from the real kube-apiserver fixtures (test/fixtures/admission).
 *
 * - small: `pod-irsa-single-container.json` as recorded (1 container), compact JSON (~2.6 KB).
 * - typical: `pod-irsa-multi-container.json` (init + app + sidecar) plus a third container `worker`, a copy of
 *   `app` with ports, resources and probes, then env vars until the body reaches 8 KiB.
 * - large: the typical pod with env vars added round-robin until the body reaches 64 KiB.
 * @module
 */
import { DEFAULTS } from '../../function/names.ts'
import { loadJson } from '../support/fixtures.ts'

export type PayloadName = 'small' | 'typical' | 'large'

export interface Payload {
  readonly name: PayloadName
  readonly body: string
  readonly containers: number
  readonly initContainers: number
}

// biome-ignore lint/suspicious/noExplicitAny: wire JSON
type Json = any

const fixture = (name: string): Json => loadJson(`admission/${name}`)

/** The identity both reference servers inject for `role`: the webhook's defaults, no region. */
export function benchIdentity(role: string) {
  return {
    roleArn: role,
    audience: DEFAULTS.audience,
    expirationSeconds: DEFAULTS.expirationSeconds,
    stsEndpoint: DEFAULTS.stsEndpoint,
    region: undefined,
  }
}

/** Reads the recorded irsa-sa ServiceAccount (annotated with a role). */
export function serviceAccount(): Json {
  return fixture('serviceaccount-irsa-sa.json')
}

function addWorker(review: Json): void {
  const spec = review.request.object.spec
  const app = spec.containers[0]
  spec.containers.push({
    ...structuredClone(app),
    name: 'worker',
    image: 'registry.example.com/team/worker:2.14.3',
    command: ['/usr/local/bin/worker', '--queue=jobs', '--concurrency=8'],
    ports: [{ name: 'metrics', containerPort: 9090, protocol: 'TCP' }],
    resources: {
      limits: { cpu: '500m', memory: '512Mi' },
      requests: { cpu: '100m', memory: '128Mi' },
    },
    livenessProbe: {
      httpGet: { path: '/healthz', port: 9090, scheme: 'HTTP' },
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
  })
}

/** Appends env vars round-robin over the containers until the compact body has at least `bytes`. */
function growTo(review: Json, bytes: number): void {
  const containers: Json[] = review.request.object.spec.containers
  let size = JSON.stringify(review).length
  for (let i = 0; size < bytes; i += 1) {
    const container = containers[i % containers.length]
    container.env ??= []
    const entry = { name: `APP_SETTING_${i}`, value: `value-${i}-${'x'.repeat(24)}` }
    container.env.push(entry)
    size += JSON.stringify(entry).length + 1
  }
}

function payload(name: PayloadName, review: Json): Payload {
  const spec = review.request.object.spec
  return {
    name,
    body: JSON.stringify(review),
    containers: spec.containers.length,
    initContainers: spec.initContainers?.length ?? 0,
  }
}

/** The three bench bodies, built once. */
export function buildPayloads(): Record<PayloadName, Payload> {
  const small = fixture('pod-irsa-single-container.json')
  const typical = fixture('pod-irsa-multi-container.json')
  addWorker(typical)
  growTo(typical, 8 * 1024)
  const large = structuredClone(typical)
  growTo(large, 64 * 1024)
  return {
    small: payload('small', small),
    typical: payload('typical', typical),
    large: payload('large', large),
  }
}
