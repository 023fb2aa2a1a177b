/**
 * Prometheus metrics, on a registry owned by the caller (no globals, so tests and processes never share state).
 * @module
 */
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  Registry,
} from 'prom-client'
import { VERSION } from './version.ts'

export interface Metrics {
  readonly registry: Registry
  readonly lookupDuration: Histogram<'result'>
  readonly lookupErrors: Counter<'reason'>
  /** Counts one decision and its latency. */
  recordDecision(outcome: string, seconds: number): void
  /** Counts one ServiceAccount cache lookup. */
  recordCache(result: 'hit' | 'miss'): void
  /** Exposes the watch-mode informer's health, read from `state` at each scrape (watch mode only). */
  watchInformer(state: () => InformerState): void
}

/** What the watch-mode informer reports to /metrics. */
export interface InformerState {
  /** LISTs that failed since start (the first LIST and every relist). */
  readonly listErrors: number
  /** Seconds without a successful LIST since the informer last failed (or since start); 0 while in sync. */
  readonly outOfSyncSeconds: number
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

interface HistogramValue {
  readonly metricName: string
  readonly labels: Record<string, string | number>
  readonly value: number
}

interface Series {
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: Float64Array
  sum: number
  count: number
}

/**
 * A histogram with one `outcome` label, observed on every review. prom-client's Histogram converts, validates and
 * hashes the labels on each observe(); this one keeps one series per outcome in a Map of typed arrays and gives
 * prom-client's registry the same values prom-client's Histogram would (`_bucket` cumulative with `le`, `+Inf`,
 * `_sum`, `_count`; tested line for line against it), so the exposition stays prom-client's.
 */
export class OutcomeHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #series = new Map<string, Series>()

  readonly name: string
  readonly help: string
  readonly buckets: readonly number[]

  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name
    this.help = help
    this.buckets = buckets
  }

  observe(outcome: string, value: number): void {
    let series = this.#series.get(outcome)
    if (series === undefined) {
      series = { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 }
      this.#series.set(outcome, series)
    }
    let index = 0
    while (index < this.buckets.length && value > (this.buckets[index] ?? 0)) index++
    series.counts[index] = (series.counts[index] ?? 0) + 1
    series.sum += value
    series.count++
  }

  /** What prom-client's registry reads from a metric when it renders the exposition. */
  async get() {
    const values: HistogramValue[] = []
    for (const [outcome, series] of this.#series) {
      let cumulative = 0
      this.buckets.forEach((bound, index) => {
        cumulative += series.counts[index] ?? 0
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { le: bound, outcome },
          value: cumulative,
        })
      })
      const labels = { outcome }
      values.push(
        { metricName: `${this.name}_bucket`, labels: { le: '+Inf', outcome }, value: series.count },
        { metricName: `${this.name}_sum`, labels, value: series.sum },
        { metricName: `${this.name}_count`, labels, value: series.count },
      )
    }
    return {
      name: this.name,
      help: this.help,
      type: 'histogram' as never,
      values,
      aggregator: 'sum',
    }
  }

  /** Observations so far, per outcome. */
  *counts(): Iterable<[outcome: string, count: number]> {
    for (const [outcome, series] of this.#series) yield [outcome, series.count]
  }

  reset(): void {
    this.#series.clear()
  }
}

/**
 * `irsa_webhook_build_info{version,node} 1`: which release and which Node runs, for dashboards and alerts
 * (e.g. `count by (version) (irsa_webhook_build_info)` during a rollout).
 */
function addBuildInfo(registry: Registry): void {
  new Gauge({
    name: 'irsa_webhook_build_info',
    help: 'The running release (package.json version) and Node version; always 1',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: VERSION, node: process.version }, 1)
}

/** Creates the webhook's metrics on a fresh registry; `processMetrics` adds Node's default process metrics. */
export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry })
  // The review path counts in plain numbers (a labelled prom-client inc() or observe() hashes its labels on every
  // call, which showed in the per-review profile); prom-client's counters take the running totals when scraped.
  const requestDuration = new OutcomeHistogram(
    'irsa_webhook_request_duration_seconds',
    'Time to answer one AdmissionReview, by outcome',
    LATENCY_BUCKETS,
  )
  registry.registerMetric(requestDuration as unknown as Metric)
  new Counter({
    name: 'irsa_webhook_decisions_total',
    help: 'Admission decisions by outcome (mutated, not-annotated, sa-not-found, lookup-failed, ...)',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [outcome, count] of requestDuration.counts()) this.inc({ outcome }, count)
    },
  })
  addBuildInfo(registry)
  const cacheCounts = { hit: 0, miss: 0 }
  new Counter({
    name: 'irsa_webhook_sa_cache_total',
    help: 'ServiceAccount cache lookups, by result (hit, miss)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset()
      for (const result of ['hit', 'miss'] as const) {
        if (cacheCounts[result] > 0) this.inc({ result }, cacheCounts[result])
      }
    },
  })
  let informer: (() => InformerState) | undefined
  const watchInformer = (state: () => InformerState) => {
    const registered = informer !== undefined
    informer = state
    if (registered) return
    new Counter({
      name: 'irsa_webhook_sa_informer_list_errors_total',
      help: 'ServiceAccount LISTs of the watch-mode informer that failed (the first LIST, and the relist after every failed watch or LIST)',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(informer?.().listErrors ?? 0)
      },
    })
    new Gauge({
      name: 'irsa_webhook_sa_informer_out_of_sync_seconds',
      help: 'Seconds the watch-mode informer has gone without a successful LIST since it started or its watch or LIST last failed; 0 while in sync. /readyz fails above SA_WATCH_UNREADY_AFTER_SECONDS',
      registers: [registry],
      collect() {
        this.set(informer?.().outOfSyncSeconds ?? 0)
      },
    })
  }
  return {
    registry,
    watchInformer,
    recordDecision(outcome, seconds) {
      requestDuration.observe(outcome, seconds)
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
