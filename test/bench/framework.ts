/**
 * `npm run bench:framework`: where ours' per-review CPU goes, layer by layer. Servers answer the typical review over
 * plain HTTP with a fixed ServiceAccount (no lookup): the floor (node:http), the same work in a bare Hono route, our
 * `createApp` on plain `serve()`, on our `startServer`, with process metrics (test/bench/framework-servers.ts), and
 * ours as the image runs it (dist/handler.js, Knative mode, SERVICE_ACCOUNTS_FILE). Each is loaded for `--seconds`
 * (default 5) in `--rounds` (default 3) alternating rounds; CPU per review comes from /proc/<pid>/stat. Prints
 * medians and floor/side ratios.
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { cpuMs, pinSelf, SERVER_CPU, spawnNode } from './child.ts'
import { runLoad } from './load.ts'
import { buildPayloads, serviceAccount } from './payloads.ts'
import { machineLines, median } from './report.ts'
import { ensureBuild, freePort, OURS, waitUntilAnswering } from './setup.ts'

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' } },
})
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const body = buildPayloads().typical.body
const dir = mkdtempSync(join(tmpdir(), 'irsa-framework-'))
const saFile = join(dir, 'sa.json')
writeFileSync(saFile, JSON.stringify(serviceAccount()))

const SERVERS = 'test/bench/framework-servers.ts'
const SIDES = ['floor', 'hono', 'app', 'app-server', 'app-metrics', 'ours'] as const
type Side = (typeof SIDES)[number]
const program = (side: Side) =>
  side === 'ours'
    ? { entry: OURS.entry, nodeArgs: OURS.nodeArgs }
    : { entry: SERVERS, nodeArgs: [] }

/** One round for one side: start, warm up 1 s, load, read CPU per review and req/s, stop. */
async function round(side: Side): Promise<{ usPerReview: number; rps: number }> {
  const port = String(await freePort())
  const env = {
    SIDE: side,
    PORT: port,
    HOST: '127.0.0.1',
    K_SERVICE: 'bench',
    LOG_LEVEL: 'warn',
    SERVICE_ACCOUNTS_FILE: saFile,
    SA_FILE: saFile,
  }
  const { entry, nodeArgs } = program(side)
  const child = spawnNode(entry, env, SERVER_CPU, nodeArgs)
  const url = `http://127.0.0.1:${port}/mutate?timeout=10s`
  try {
    await waitUntilAnswering(child, url).catch((error: unknown) => {
      throw new Error(`${side} did not start: ${String(error)}\n${child.stderr()}`)
    })
    await runLoad({ url, body, seconds: 1 })
    const before = cpuMs(child.pid)
    const result = await runLoad({ url, body, seconds: SECONDS })
    if (result.errors > 0) throw new Error(`${side}: ${result.errors} errors`)
    return { usPerReview: ((cpuMs(child.pid) - before) * 1000) / result.ok, rps: result.rps }
  } finally {
    await child.stop()
  }
}

console.log(machineLines().join('\n'))
console.log(ensureBuild())
pinSelf()
const results = new Map<Side, { us: number[]; rps: number[] }>(
  SIDES.map((side) => [side, { us: [], rps: [] }]),
)
try {
  for (let index = 0; index < ROUNDS; index++) {
    for (const side of SIDES) {
      const { usPerReview, rps } = await round(side)
      results.get(side)?.us.push(usPerReview)
      results.get(side)?.rps.push(rps)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
const floorUs = median(results.get('floor')?.us ?? [])
console.log(
  `typical review over HTTP, fixed ServiceAccount, ${ROUNDS} rounds of ${SECONDS} s, medians:`,
)
for (const side of SIDES) {
  const us = median(results.get(side)?.us ?? [])
  const rps = median(results.get(side)?.rps ?? [])
  console.log(
    `${side.padEnd(11)} ${us.toFixed(0).padStart(5)} µs CPU/review  ${rps.toFixed(0).padStart(6)} req/s  ` +
      `floor/${side} ${(floorUs / us).toFixed(2)}x  [${(results.get(side)?.us ?? []).map((v) => v.toFixed(0)).join(' ')}]`,
  )
}
