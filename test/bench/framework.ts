/**
 * `npm run bench:framework`: where ours' per-review CPU goes, layer by layer. Servers answer the typical review over
 * plain HTTP with a fixed ServiceAccount (no lookup): the floor (node:http), the same work in a bare Hono route, our
 * `createApp` on @hono/node-server, on our `startServer`, with process metrics (test/bench/framework-servers.ts),
 * and ours with the image's node flags (dist/handler.js, Knative mode, SERVICE_ACCOUNTS_FILE; no compile cache,
 * which changes start-up, not CPU per review).
 *
 * All of them run at the same time, pinned to the same CPU, and each round loads all of them at once at the same
 * fixed rate (well below saturation): whatever else the machine does in a round, every side suffers it alike.
 * CPU time per review comes from /proc; the ratio printed is the median over the rounds of side/floor in that
 * round. (Loading one server after the other, a 2-5 % difference drowned in ±15 % drift between runs.)
 *
 * Options: --rate N (requests/s per server, default 350), --seconds N (per round, default 3), --rounds N (default
 * 11).
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type Child, cpuMs, pinSelf } from './child.ts'
import { runLoad } from './load.ts'
import { buildPayloads, serviceAccount } from './payloads.ts'
import { machineLines, median } from './report.ts'
import { ensureBuild, OURS, startServer } from './setup.ts'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '350' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '11' },
  },
})
const RATE = Number(values.rate)
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const body = buildPayloads().typical.body
const dir = mkdtempSync(join(tmpdir(), 'irsa-framework-'))
const saFile = join(dir, 'sa.json')
writeFileSync(saFile, JSON.stringify(serviceAccount()))

const SERVERS = 'test/bench/framework-servers.ts'
const SIDES = ['floor', 'hono', 'app', 'app-server', 'app-metrics', 'ours'] as const
type Side = (typeof SIDES)[number]
const program = (side: Side) => (side === 'ours' ? OURS : { entry: SERVERS, nodeArgs: [] })

interface Server {
  readonly side: Side
  readonly child: Child
  readonly url: string
  /** CPU µs per review, one per round. */
  readonly us: number[]
}

async function start(side: Side): Promise<Server> {
  const env = {
    SIDE: side,
    HOST: '127.0.0.1',
    K_SERVICE: 'bench',
    LOG_LEVEL: 'warn',
    SERVICE_ACCOUNTS_FILE: saFile,
    SA_FILE: saFile,
  }
  const { child, url } = await startServer(program(side), env, 'http')
  return { side, child, url, us: [] }
}

/** One round: every server loaded at RATE at the same time; CPU per answered review of each. */
async function round(servers: readonly Server[], seconds: number, record: boolean) {
  const before = servers.map((server) => cpuMs(server.child.pid))
  const results = await Promise.all(
    servers.map((server) => runLoad({ url: server.url, body, seconds, rate: RATE })),
  )
  servers.forEach((server, index) => {
    const result = results[index]
    if (result === undefined || result.errors > 0) {
      throw new Error(`${server.side}: ${result?.errors} errors`)
    }
    const used = cpuMs(server.child.pid) - (before[index] ?? 0)
    if (record) server.us.push((used * 1000) / result.ok)
  })
}

console.log(machineLines().join('\n'))
console.log(ensureBuild())
pinSelf()
const servers: Server[] = []
try {
  for (const side of SIDES) servers.push(await start(side))
  await round(servers, 2, false) // warm-up: JIT and caches settle
  for (let index = 0; index < ROUNDS; index++) await round(servers, SECONDS, true)
} finally {
  for (const server of servers) await server.child.stop()
  rmSync(dir, { recursive: true, force: true })
}
const floor = servers.find((server) => server.side === 'floor')
if (floor === undefined) throw new Error('no floor')
console.log(
  `typical review over HTTP, fixed ServiceAccount; all ${servers.length} servers on one CPU, loaded together at ` +
    `${RATE} req/s each; ${ROUNDS} rounds of ${SECONDS} s:`,
)
for (const server of servers) {
  const ratios = server.us.map((us, index) => us / (floor.us[index] ?? Number.NaN))
  console.log(
    `${server.side.padEnd(11)} ${median(server.us).toFixed(0).padStart(5)} µs CPU/review  ` +
      `${server.side}/floor ${median(ratios).toFixed(2)}x  (rounds: ${ratios.map((v) => v.toFixed(2)).join(' ')})`,
  )
}
