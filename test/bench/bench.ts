/**
 * `npm run bench`: the built server (dist/handler.js) against the floor (test/bench/floor-server.ts), same load,
 * same run. Throughput and latency over HTTPS and HTTP for three real AdmissionReview sizes with the SA cache on
 * (TTL 10 s, the default) and off (TTL 0: a ServiceAccount GET per request), info-level logging as an extra row,
 * peak RSS after load, and cold start (spawn → first /mutate answer with a patch). Ratios are ours/floor.
 * Ours runs as the image runs it (node flags of the `start` script, warmed NODE_COMPILE_CACHE); the floor plain.
 *
 * Options: --seconds N (per measured run, default 5), --runs N (cold starts per server, default 5).
 * @module
 */
import { parseArgs } from 'node:util'
import { memoryOf, patchOf, pinSelf, post } from './child.ts'
import { coldStarts } from './cold-starts.ts'
import { type LoadResult, runLoad } from './load.ts'
import { buildPayloads, type PayloadName } from './payloads.ts'
import { fixed, loadHeader, loadRow, machineLines, ratioRow, verdict } from './report.ts'
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

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, runs: { type: 'string', default: '5' } },
})
const SECONDS = Number(values.seconds)
const RUNS = Number(values.runs)
const payloads = buildPayloads()

interface PairResult {
  readonly rows: Map<PayloadName, { ours: LoadResult; floor: LoadResult }>
  readonly memory: { ours: number; floor: number }
}

async function checkSamePatch(ours: Running, floor: Running, body: string): Promise<void> {
  const [a, b] = [patchOf(await post(ours.url, body)), patchOf(await post(floor.url, body))]
  if (a !== b) throw new Error(`ours and the floor answer different patches:\n${a}\n${b}`)
}

/** Warm-up, then the measured run, counting the ServiceAccount GETs the fake served during it. */
async function gets(env: Environment, url: string, body: string) {
  await runLoad({ url, body, seconds: 1 })
  const before = await env.api.gets()
  const result = await runLoad({ url, body, seconds: SECONDS })
  return { result, gets: (await env.api.gets()) - before }
}

/** Starts ours and the floor with the same settings, loads each with every payload, reads peak RSS. */
async function pair(
  env: Environment,
  settings: ServerSettings,
  names: readonly PayloadName[],
): Promise<PairResult> {
  const ours = await startServer(OURS, oursEnv(env, settings), settings.scheme)
  const floor = await startServer(FLOOR, floorEnv(env, settings), settings.scheme)
  const rows = new Map<PayloadName, { ours: LoadResult; floor: LoadResult }>()
  try {
    for (const [index, name] of names.entries()) {
      const body = payloads[name].body
      await checkSamePatch(ours, floor, body)
      const label = `${settings.scheme} ${name} ttl=${settings.ttlSeconds}s log=${settings.logLevel ?? 'warn'}`
      // Alternate who goes first, so slow drift on the machine does not always favour one side.
      const order = index % 2 === 0 ? [ours, floor] : [floor, ours]
      const measured = new Map<Running, { result: LoadResult; gets: number }>()
      for (const server of order) measured.set(server, await gets(env, server.url, body))
      const a = measured.get(ours)
      const b = measured.get(floor)
      if (a === undefined || b === undefined) throw new Error('missing result')
      console.log(loadRow(`ours  ${label}`, a.result), `GETs/req ${fixed(a.gets / a.result.total)}`)
      console.log(loadRow(`floor ${label}`, b.result), `GETs/req ${fixed(b.gets / b.result.total)}`)
      console.log(ratioRow(`  ours/floor`, a.result, b.result))
      rows.set(name, { ours: a.result, floor: b.result })
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
  console.log(`load: autocannon, 10 connections, 1 s warm-up + ${SECONDS} s per run`)
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
    const typical = https.rows.get('typical')
    if (typical === undefined) throw new Error('no typical https result')
    console.log('\ntargets (ours/floor):')
    const targets = [
      {
        name: 'throughput, typical pod, HTTPS',
        ratio: typical.ours.rps / typical.floor.rps,
        limit: 0.9,
        kind: 'min' as const,
        detail: `(${typical.ours.rps.toFixed(0)} vs ${typical.floor.rps.toFixed(0)} req/s)`,
      },
      ...[
        ['HTTP (Knative)', coldHttp],
        ['HTTPS (classic)', coldHttps],
      ].map(([label, c]) => {
        const cold = c as { ours: number; floor: number }
        return {
          name: `cold start, ${label}`,
          ratio: cold.ours / cold.floor,
          limit: 1.3,
          kind: 'max' as const,
          detail: `(${cold.ours.toFixed(0)} vs ${cold.floor.toFixed(0)} ms, median of ${RUNS})`,
        }
      }),
      {
        name: 'peak RSS after load',
        ratio: https.memory.ours / https.memory.floor,
        limit: 1.3,
        kind: 'max' as const,
        detail: `(${https.memory.ours.toFixed(1)} vs ${https.memory.floor.toFixed(1)} MiB)`,
      },
    ]
    for (const target of targets) console.log(verdict(target))
    console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`)
  } finally {
    await env.close()
  }
}

await main()
