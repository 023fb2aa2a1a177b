/**
 * `npm run bench`: the built server (dist/handler.js) against the floor (test/bench/floor-server.ts), same load,
 * same run. Throughput and latency over HTTPS and HTTP for three real AdmissionReview sizes with the SA cache on
 * (TTL 10 s, the default) and off (TTL 0: a ServiceAccount GET per request), info-level logging as an extra row,
 * peak RSS after load, and cold start (spawn → first /mutate answer with a patch). Ratios are ours/floor, except
 * the start-up rows of startup.ts: spawn → listening and spawn → first 200 with a patch against a bare `node -e 0`
 * (issue 12's yardstick).
 * Ours runs as the image runs it (node flags of the `start` script, warmed NODE_COMPILE_CACHE); the floor plain.
 *
 * Each row is several short rounds, ours and the floor back to back, alternating who goes first; the req/s
 * ratio is the median of the rounds' ratios. (One long run per side let a slow minute on a shared machine decide
 * a row: the same build measured 0.49x and 0.96x on the small pod in two runs.) The server's CPU time per review
 * (/proc) is printed too: at saturation req/s is about 1 / CPU per review, and CPU time is less disturbed by
 * other tenants than wall-clock throughput.
 *
 * Options: --seconds N (per round, default 3), --rounds N (default 5), --runs N (cold starts per server, default 5),
 * --start-runs N (paired rounds against bare node per scheme, default 11).
 * @module
 */
import { parseArgs } from 'node:util'
import { cpuMs, memoryOf, patchOf, pinSelf, post } from './child.ts'
import { coldStarts } from './cold-starts.ts'
import { CONNECTIONS, type LoadResult, runLoad } from './load.ts'
import { buildPayloads, type PayloadName } from './payloads.ts'
import {
  fixed,
  loadHeader,
  loadRow,
  machineLines,
  median,
  type RoundsResult,
  ratioRow,
  verdict,
} from './report.ts'
import {
  commandLines,
  type Environment,
  ensureBuild,
  FLOOR,
  floorEnv,
  OURS,
  oursEnv,
  type Running,
  type ServerSettings,
  startEnvironment,
  startServer,
} from './setup.ts'
import { startupLines, startupRatios, startupTargets } from './startup.ts'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '5' },
    'start-runs': { type: 'string', default: '11' },
  },
})
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const RUNS = Number(values.runs)
const START_RUNS = Number(values['start-runs'])
const payloads = buildPayloads()

interface Row {
  readonly ours: RoundsResult
  readonly floor: RoundsResult
  /** Median over the rounds of ours' req/s / the floor's req/s in that round. */
  readonly ratio: number
}

interface PairResult {
  readonly rows: Map<PayloadName, Row>
  readonly memory: { ours: number; floor: number }
}

async function checkSamePatch(ours: Running, floor: Running, body: string): Promise<void> {
  const [a, b] = [patchOf(await post(ours.url, body)), patchOf(await post(floor.url, body))]
  if (a !== b) throw new Error(`ours and the floor answer different patches:\n${a}\n${b}`)
}

interface Measured {
  readonly result: LoadResult
  readonly cpuUs: number
  readonly gets: number
}

/** One measured load, with the server's CPU time per answered review and the ServiceAccount GETs it caused. */
async function measured(env: Environment, server: Running, body: string): Promise<Measured> {
  const [cpuBefore, getsBefore] = [cpuMs(server.child.pid), await env.api.gets()]
  const result = await runLoad({ url: server.url, body, seconds: SECONDS })
  const cpuUs = ((cpuMs(server.child.pid) - cpuBefore) * 1000) / result.ok
  return { result, cpuUs, gets: (await env.api.gets()) - getsBefore }
}

function summary(runs: readonly Measured[]): RoundsResult {
  const sum = (pick: (run: Measured) => number) => runs.reduce((total, run) => total + pick(run), 0)
  const ok = sum((run) => run.result.ok)
  return {
    rps: median(runs.map((run) => run.result.rps)),
    p50: median(runs.map((run) => run.result.p50)),
    p99: median(runs.map((run) => run.result.p99)),
    errors: sum((run) => run.result.errors),
    total: sum((run) => run.result.total),
    ok,
    cpuUs: median(runs.map((run) => run.cpuUs)),
    getsPerRequest: sum((run) => run.gets) / ok,
  }
}

/** A 1 s warm-up of each, then ROUNDS rounds of both back to back, alternating who goes first. */
async function rounds(env: Environment, ours: Running, floor: Running, body: string) {
  for (const server of [ours, floor]) await runLoad({ url: server.url, body, seconds: 1 })
  const runs = { ours: [] as Measured[], floor: [] as Measured[] }
  const ratios: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const oursFirst = round % 2 === 0
    const first = await measured(env, oursFirst ? ours : floor, body)
    const second = await measured(env, oursFirst ? floor : ours, body)
    const [a, b] = oursFirst ? [first, second] : [second, first]
    runs.ours.push(a)
    runs.floor.push(b)
    ratios.push(a.result.rps / b.result.rps)
  }
  return { ours: summary(runs.ours), floor: summary(runs.floor), ratio: median(ratios) }
}

/** Starts ours and the floor with the same settings, loads each with every payload, reads peak RSS. */
async function pair(
  env: Environment,
  settings: ServerSettings,
  names: readonly PayloadName[],
): Promise<PairResult> {
  const ours = await startServer(OURS, oursEnv(env, settings), settings.scheme)
  const floor = await startServer(FLOOR, floorEnv(env, settings), settings.scheme)
  const rows = new Map<PayloadName, Row>()
  try {
    for (const name of names) {
      const body = payloads[name].body
      await checkSamePatch(ours, floor, body)
      const label = `${settings.scheme} ${name} ttl=${settings.ttlSeconds}s log=${settings.logLevel ?? 'warn'}`
      const row = await rounds(env, ours, floor, body)
      console.log(loadRow(`ours  ${label}`, row.ours))
      console.log(loadRow(`floor ${label}`, row.floor))
      console.log(ratioRow(`  ours/floor`, row.ratio, row.ours, row.floor))
      rows.set(name, row)
    }
    return {
      rows,
      memory: {
        ours: memoryOf(ours.child.pid)?.peak ?? 0,
        floor: memoryOf(floor.child.pid)?.peak ?? 0,
      },
    }
  } finally {
    await ours.child.stop()
    await floor.child.stop()
  }
}

async function main(): Promise<void> {
  pinSelf()
  const started = performance.now()
  for (const line of machineLines()) console.log(line)
  console.log(ensureBuild())
  for (const p of Object.values(payloads)) {
    console.log(
      `payload ${p.name}: ${p.body.length} bytes, ${p.containers} containers + ${p.initContainers} init`,
    )
  }
  console.log(
    `load: autocannon, ${CONNECTIONS} connections; per row a 1 s warm-up of each, then ${ROUNDS} rounds of ${SECONDS} s ` +
      'of ours and the floor back to back (alternating who goes first); medians of the rounds',
  )
  const env = await startEnvironment()
  try {
    for (const line of commandLines(env)) console.log(line)
    console.log(`\n${loadHeader()}`)
    const all: PayloadName[] = ['small', 'typical', 'large']
    const https = await pair(env, { scheme: 'https', ttlSeconds: 10 }, all)
    await pair(env, { scheme: 'http', ttlSeconds: 10 }, all)
    await pair(env, { scheme: 'https', ttlSeconds: 0 }, ['typical'])
    await pair(env, { scheme: 'http', ttlSeconds: 0 }, ['typical'])
    await pair(env, { scheme: 'https', ttlSeconds: 10, logLevel: 'info' }, ['typical'])
    console.log(
      `peak RSS (VmHWM) after the https ttl=10s runs: ours ${fixed(https.memory.ours, 1)} MiB, floor ${fixed(https.memory.floor, 1)} MiB`,
    )
    const coldHttp = await coldStarts(env, 'http', payloads.small.body, RUNS)
    const coldHttps = await coldStarts(env, 'https', payloads.small.body, RUNS)
    const start = {
      http: await startupRatios(env, 'http', payloads.small.body, START_RUNS),
      https: await startupRatios(env, 'https', payloads.small.body, START_RUNS),
    }
    for (const scheme of ['http', 'https'] as const) {
      for (const line of startupLines(scheme, start[scheme])) console.log(line)
    }
    const typical = https.rows.get('typical')
    if (typical === undefined) throw new Error('no typical https result')
    console.log('\ntargets (ours/floor):')
    const targets = [
      {
        name: 'throughput, typical pod, HTTPS',
        ratio: typical.ratio,
        limit: 0.9,
        kind: 'min' as const,
        detail:
          `(median of ${ROUNDS} rounds' ratios; medians ${typical.ours.rps.toFixed(0)} vs ${typical.floor.rps.toFixed(0)} req/s, ` +
          `CPU ${typical.ours.cpuUs.toFixed(0)} vs ${typical.floor.cpuUs.toFixed(0)} µs/review)`,
      },
      ...(
        [
          ['HTTP (Knative)', coldHttp],
          ['HTTPS (classic)', coldHttps],
        ] as const
      ).map(([label, cold]) => ({
        name: `cold start, ${label}`,
        ratio: cold.ours / cold.floor,
        limit: 1.3,
        kind: 'max' as const,
        detail: `(${cold.ours.toFixed(0)} vs ${cold.floor.toFixed(0)} ms, median of ${RUNS})`,
      })),
      {
        name: 'peak RSS after load',
        ratio: https.memory.ours / https.memory.floor,
        limit: 1.3,
        kind: 'max' as const,
        detail: `(${https.memory.ours.toFixed(1)} vs ${https.memory.floor.toFixed(1)} MiB)`,
      },
    ]
    for (const target of targets) console.log(verdict(target))
    console.log('targets (ours/bare node -e 0, same binary, flags and pinning):')
    for (const line of startupTargets(start, START_RUNS)) console.log(line)
    console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`)
  } finally {
    await env.close()
  }
}

await main()
