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
  /** Counts one decision and its latency; the labelled series are looked up once per outcome, not per call. */
  recordDecision(outcome: string, seconds: number): void
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Creates the webhook's metrics on a fresh registry; `processMetrics` adds Node's default process metrics. */
export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry })
  const decisions = new Counter({
    name: 'irsa_webhook_decisions_total',
    help: 'Admission decisions by outcome (mutated, not-annotated, sa-not-found, lookup-failed, ...)',
    labelNames: ['outcome'],
    registers: [registry],
  })
  const requestDuration = new Histogram({
    name: 'irsa_webhook_request_duration_seconds',
    help: 'Time to answer one AdmissionReview, by outcome',
    labelNames: ['outcome'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  })
  const series = new Map<string, { count: () => void; observe: (seconds: number) => void }>()
  const seriesOf = (outcome: string) => {
    let found = series.get(outcome)
    if (found === undefined) {
      const counter = decisions.labels(outcome)
      const histogram = requestDuration.labels(outcome)
      found = { count: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) }
      series.set(outcome, found)
    }
    return found
  }
  return {
    registry,
    decisions,
    requestDuration,
    recordDecision(outcome, seconds) {
      const { count, observe } = seriesOf(outcome)
      count()
      observe(seconds)
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
    cache: new Counter({
      name: 'irsa_webhook_sa_cache_total',
      help: 'ServiceAccount cache lookups, by result (hit, miss)',
      labelNames: ['result'],
      registers: [registry],
    }),
  }
}
