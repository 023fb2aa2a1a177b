/** The review-path metrics: counted cheaply, exposed exactly as prom-client's own metrics would be. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Histogram, Registry } from 'prom-client'
import { createMetrics, OutcomeHistogram } from '../../function/metrics.ts'

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
// Below, on and above bounds, zero, above the last bound, two outcomes, interleaved.
const OBSERVED: [string, number][] = [
  ['mutated', 0.0004],
  ['mutated', 0.001],
  ['sa-not-found', 0.0011],
  ['mutated', 0.003],
  ['mutated', 0],
  ['lookup-failed', 3.2],
  ['mutated', 10],
  ['mutated', 42],
  ['sa-not-found', 0.0999],
]

describe('OutcomeHistogram', () => {
  it('renders line for line what prom-client renders for a Histogram with the same observations', async () => {
    const ours = new Registry()
    const histogram = new OutcomeHistogram('h_seconds', 'help text', BUCKETS)
    ours.registerMetric(histogram as never)
    const reference = new Registry()
    const theirs = new Histogram({
      name: 'h_seconds',
      help: 'help text',
      labelNames: ['outcome'],
      buckets: BUCKETS,
      registers: [reference],
    })
    for (const [outcome, value] of OBSERVED) {
      histogram.observe(outcome, value)
      theirs.observe({ outcome }, value)
    }
    const text = await ours.metrics()
    assert.equal(text, await reference.metrics())
    assert.match(text, /^h_seconds_bucket\{le="0.001",outcome="mutated"\} 3$/m)
    assert.match(text, /^h_seconds_count\{outcome="mutated"\} 6$/m)
    histogram.reset()
    assert.equal(await ours.metrics(), '# HELP h_seconds help text\n# TYPE h_seconds histogram\n')
  })
})

describe('createMetrics', () => {
  it('counts each decision once however often it is scraped', async () => {
    const metrics = createMetrics()
    metrics.recordDecision('mutated', 0.002)
    metrics.recordDecision('mutated', 0.004)
    metrics.recordDecision('not-annotated', 0.001)
    for (let scrape = 0; scrape < 2; scrape++) {
      const text = await metrics.registry.metrics()
      assert.match(text, /^irsa_webhook_decisions_total\{outcome="mutated"\} 2$/m)
      assert.match(text, /^irsa_webhook_decisions_total\{outcome="not-annotated"\} 1$/m)
      assert.match(text, /^irsa_webhook_request_duration_seconds_count\{outcome="mutated"\} 2$/m)
      assert.match(
        text,
        /^irsa_webhook_request_duration_seconds_bucket\{le="0.0025",outcome="mutated"\} 1$/m,
      )
    }
    metrics.recordDecision('mutated', 0.002)
    assert.match(
      await metrics.registry.metrics(),
      /^irsa_webhook_decisions_total\{outcome="mutated"\} 3$/m,
    )
  })
})

describe('watch-mode informer metrics', () => {
  it('exist only once an informer registers, and show its state as of each scrape', async () => {
    const metrics = createMetrics()
    assert.doesNotMatch(await metrics.registry.metrics(), /irsa_webhook_sa_informer_/)
    let state = { listErrors: 0, outOfSyncSeconds: 0 }
    metrics.watchInformer(() => state)
    const before = await metrics.registry.metrics()
    assert.match(before, /^irsa_webhook_sa_informer_list_errors_total 0$/m)
    assert.match(before, /^irsa_webhook_sa_informer_out_of_sync_seconds 0$/m)
    state = { listErrors: 3, outOfSyncSeconds: 7.5 }
    for (let scrape = 0; scrape < 2; scrape++) {
      const text = await metrics.registry.metrics()
      assert.match(text, /^irsa_webhook_sa_informer_list_errors_total 3$/m)
      assert.match(text, /^irsa_webhook_sa_informer_out_of_sync_seconds 7.5$/m)
    }
    // A second informer on the same registry replaces the first one's state instead of registering twice.
    metrics.watchInformer(() => ({ listErrors: 1, outOfSyncSeconds: 0 }))
    assert.match(
      await metrics.registry.metrics(),
      /^irsa_webhook_sa_informer_list_errors_total 1$/m,
    )
  })
})
