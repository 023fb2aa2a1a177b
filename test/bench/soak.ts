/**
 * `npm run soak`: the built server (dist/handler.js started as the image starts it: node flags of the `start`
 * script, warmed NODE_COMPILE_CACHE; HTTPS, SA lookup against the fake kube-apiserver) under a
 * steady load of ~80% of its measured maximum, reported per 10 s window: req/s, errors, p50/p99, RSS. Verdict:
 * no errors, and RSS within ±10% of the first window after warm-up.
 *
 * `--sigterm`: the server runs with SHUTDOWN_DELAY_MS=2000; SIGTERM is sent mid-run and the load stops 1 s later
 * (as endpoints stop routing to a terminating pod), then failed requests and the exit time are counted.
 * Options: --seconds N (default 60), --sigterm, --scheme http|https (default https).
 * @module
 */
import { parseArgs } from 'node:util'
import { memoryOf, pinSelf } from './child.ts'
import { type LoadResult, runLoad } from './load.ts'
import { buildPayloads } from './payloads.ts'
import { fixed, machineLines } from './report.ts'
import {
  commandLines,
  ensureBuild,
  OURS,
  oursEnv,
  type Running,
  type Scheme,
  startEnvironment,
  startServer,
} from './setup.ts'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    sigterm: { type: 'boolean', default: false },
    scheme: { type: 'string', default: 'https' },
  },
})
const SECONDS = Number(values.seconds)
const SCHEME: Scheme = values.scheme === 'http' ? 'http' : 'https'
const WINDOW = 10
const SHUTDOWN_DELAY_MS = 2000
const body = buildPayloads().typical.body

function windowLine(index: number, result: LoadResult, rss: number): string {
  const from = index * WINDOW
  return `window ${String(from).padStart(3)}-${String(from + WINDOW).padEnd(3)}s  req/s ${fixed(result.rps, 0).padStart(6)}  errors ${result.errors}  p50 ${fixed(result.p50)} ms  p99 ${fixed(result.p99)} ms  RSS ${fixed(rss, 1)} MiB`
}

async function steady(server: Running, rate: number): Promise<void> {
  // The first window is warm-up; the RSS verdict compares at least two windows after it.
  const windows = Math.max(3, Math.round(SECONDS / WINDOW))
  const rss: number[] = []
  let errors = 0
  for (let index = 0; index < windows; index += 1) {
    const result = await runLoad({ url: server.url, body, seconds: WINDOW, rate })
    const memory = memoryOf(server.child.pid)?.rss ?? Number.NaN
    rss.push(memory)
    errors += result.errors
    console.log(windowLine(index, result, memory))
  }
  const [base, ...rest] = rss.slice(1) // the first window is warm-up
  const drift = rest.map((value) => (value - (base ?? value)) / (base ?? value))
  const worst = drift.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0)
  const flat = drift.every((d) => Math.abs(d) <= 0.1)
  console.log(`\n${errors === 0 ? 'PASS' : 'MISS'}  errors: ${errors} (target 0)`)
  console.log(
    `${flat ? 'PASS' : 'MISS'}  RSS after warm-up: worst drift ${(worst * 100).toFixed(1)}% from ${fixed(base ?? 0, 1)} MiB (target within ±10%)`,
  )
}

async function sigterm(server: Running, rate: number): Promise<void> {
  const stop = new AbortController()
  const load = runLoad({ url: server.url, body, seconds: SECONDS, rate, signal: stop.signal })
  await new Promise((resolve) => setTimeout(resolve, (SECONDS * 1000) / 2))
  const sent = performance.now()
  server.child.child.kill('SIGTERM')
  setTimeout(() => stop.abort(), 1000)
  let timer: NodeJS.Timeout | undefined
  const exit = await Promise.race([
    server.child.exit,
    new Promise((resolve) => (timer = setTimeout(() => resolve('still running'), 30_000))),
  ])
  clearTimeout(timer)
  const exitMs = performance.now() - sent
  const result = await load
  console.log(
    `SIGTERM at ${SECONDS / 2} s; load stopped 1 s later; SHUTDOWN_DELAY_MS=${SHUTDOWN_DELAY_MS}`,
  )
  console.log(`requests ${result.total}, answered 2xx ${result.ok}`)
  console.log(`exit ${String(exit)} after ${exitMs.toFixed(0)} ms (delay ${SHUTDOWN_DELAY_MS} ms)`)
  console.log(
    `${result.errors === 0 ? 'PASS' : 'MISS'}  failed requests: ${result.errors} (target 0)`,
  )
}

async function main(): Promise<void> {
  pinSelf()
  for (const line of machineLines()) console.log(line)
  console.log(ensureBuild())
  const env = await startEnvironment()
  for (const line of commandLines(env).slice(0, 2)) console.log(line)
  const extra = values.sigterm ? { SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS) } : {}
  const settings = { scheme: SCHEME, ttlSeconds: 10, extra }
  const server = await startServer(OURS, oursEnv(env, settings), SCHEME)
  try {
    const max = await runLoad({ url: server.url, body, seconds: 5 })
    const rate = Math.round(max.rps * 0.8)
    console.log(
      `${SCHEME}, typical pod (${body.length} bytes), max ${max.rps.toFixed(0)} req/s -> soak at ${rate} req/s (80%), ${SECONDS} s\n`,
    )
    await (values.sigterm ? sigterm(server, rate) : steady(server, rate))
  } finally {
    await server.child.stop()
    await env.close()
  }
}

await main()
