/**
 * Load generation with autocannon (in this process). Latency percentiles are computed here from every response's
 * own sub-millisecond time (autocannon's histogram keeps whole milliseconds only).
 * @module
 */
import { createRequire } from 'node:module'

interface AutocannonResult {
  readonly requests: { readonly total: number }
  readonly duration: number
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
}

interface Tracker {
  stop(): void
  on(
    event: 'response',
    listener: (client: unknown, status: number, bytes: number, ms: number) => void,
  ): void
}

type Autocannon = (
  options: Record<string, unknown>,
  done: (error: Error | null, result: AutocannonResult) => void,
) => Tracker

// autocannon ships no types; only the part used here is declared above.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

/** Concurrent connections of every load (kube-apiserver keeps a small pool per webhook). */
export const CONNECTIONS = 10

export interface LoadOptions {
  readonly url: string
  readonly body: string
  readonly seconds: number
  /** Requests per second over all connections; unset = as fast as possible. */
  readonly rate?: number
  /** Stops the load early when aborted. */
  readonly signal?: AbortSignal
}

export interface LoadResult {
  /** Successful (2xx) answers per second. */
  readonly rps: number
  readonly p50: number
  readonly p99: number
  /** Socket errors + timeouts + non-2xx answers. */
  readonly errors: number
  readonly total: number
  /** 2xx answers. */
  readonly ok: number
}

/** The q-quantile (0..1) of sorted values. */
function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

/** Runs one load for `seconds` and summarises it. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const times: number[] = []
  return new Promise((resolve, reject) => {
    const tracker = autocannon(
      {
        url: options.url,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: options.body,
        connections: CONNECTIONS,
        duration: options.seconds,
        ...(options.rate === undefined ? {} : { overallRate: options.rate }),
        timeout: 10,
      },
      (error, result) => {
        if (error) return reject(error)
        const sorted = Float64Array.from(times).sort()
        const ok = sorted.length
        resolve({
          rps: ok / result.duration,
          p50: quantile(sorted, 0.5),
          p99: quantile(sorted, 0.99),
          errors: result.errors + result.timeouts + result.non2xx,
          total: result.requests.total,
          ok,
        })
      },
    )
    options.signal?.addEventListener('abort', () => tracker.stop(), { once: true })
    tracker.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) times.push(ms)
    })
  })
}
