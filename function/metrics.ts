/**
 * Prometheus metrics, on a registry owned by the caller (no globals, so tests and processes never share state).
 * @module
 */
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client'

export interface Metrics {
  readonly registry: Registry
  readonly decisions: Counter<'outcome'>
  readonly requestDuration: Histogram<'outcome'>
  readonly lookupDuration: Histogram<'result'>
  readonly lookupErrors: Counter<'reason'>
  readonly cache: Counter<'result'>
  /** Counts one decision and its latency. */
  recordDecision(outcome: string, seconds: number): void
  /** Counts one ServiceAccount cache lookup. */
  recordCache(result: 'hit' | 'miss'): void
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Creates the webhook's metrics on a fresh registry; `processMetrics` adds Node's default process metrics. */
export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry })
  // The counters on the review path are plain numbers, handed to prom-client when it is scraped (`collect`):
  // a labelled inc() hashes its labels on every call, which showed in the per-review profile.
  const decisionCounts = new Map<string, number>()
  const decisions: Counter<'outcome'> = new Counter({
    name: 'irsa_webhook_decisions_total',
    help: 'Admission decisions by outcome (mutated, not-annotated, sa-not-found, lookup-failed, ...)',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      for (const [outcome, count] of decisionCounts) if (count > 0) this.inc({ outcome }, count)
      decisionCounts.clear()
    },
  })
  const cacheCounts = { hit: 0, miss: 0 }
  const cache: Counter<'result'> = new Counter({
    name: 'irsa_webhook_sa_cache_total',
    help: 'ServiceAccount cache lookups, by result (hit, miss)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      for (const result of ['hit', 'miss'] as const) {
        if (cacheCounts[result] > 0) this.inc({ result }, cacheCounts[result])
        cacheCounts[result] = 0
      }
    },
  })
  const requestDuration = new Histogram({
    name: 'irsa_webhook_request_duration_seconds',
    help: 'Time to answer one AdmissionReview, by outcome',
    labelNames: ['outcome'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  })
  // The labelled histogram series are looked up once per outcome, not per call.
  const durations = new Map<string, (seconds: number) => void>()
  const durationOf = (outcome: string) => {
    let observe = durations.get(outcome)
    if (observe === undefined) {
      const series = requestDuration.labels(outcome)
      observe = (seconds) => series.observe(seconds)
      durations.set(outcome, observe)
    }
    return observe
  }
  return {
    registry,
    decisions,
    requestDuration,
    cache,
    recordDecision(outcome, seconds) {
      decisionCounts.set(outcome, (decisionCounts.get(outcome) ?? 0) + 1)
      durationOf(outcome)(seconds)
    },
    recordCache(result) {
      cacheCounts[result]++
    },
    lookupDuration: new Histogram({
      name: 'irsa_webhook_sa_lookup_duration_seconds',
      help: 'Kubernetes API ServiceAccount GET latency, by result (found, not-found, failed)',
      labelNames: ['result'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    lookupErrors: new Counter({
      name: 'irsa_webhook_sa_lookup_errors_total',
      help: 'ServiceAccount lookups that failed (timeout, forbidden, server error, network)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  }
}
