/**
 * `npm run bench:ab -- <a/handler.js> <b/handler.js> [...]`: paired CPU per review of two or more builds of ours
 * (e.g. a copy of dist/ from before a change, and the current dist/). Every build runs at the same time, pinned to
 * the same CPU, as the image runs it (the `start` flags) with the in-cluster ServiceAccount GET against the bench's
 * fake kube-apiserver; each round loads all of them at once at the same fixed rate, HTTPS, typical pod, TTL 10 s.
 * Prints CPU µs per review and, per build, the median over rounds of its CPU / the first build's in that round.
 * Give the same build twice to see the method's own spread (A/A).
 *
 * Options: --rate N (requests/s per build, default 450), --seconds N (per round, default 3), --rounds N (default 11).
 * @module
 */
import { parseArgs } from 'node:util'
import { cpuMs, pinSelf } from './child.ts'
import { runLoad } from './load.ts'
import { buildPayloads } from './payloads.ts'
import { machineLines, median } from './report.ts'
import { ensureBuild, OURS, oursEnv, type Running, startEnvironment, startServer } from './setup.ts'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: 'string', default: '450' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '11' },
  },
})
if (positionals.length < 2) throw new Error('give two or more handler.js paths to compare')
const RATE = Number(values.rate)
const body = buildPayloads().typical.body

console.log(machineLines().join('\n'))
console.log(ensureBuild())
pinSelf()
const env = await startEnvironment()
const builds: { entry: string; server: Running; us: number[] }[] = []
try {
  for (const entry of positionals) {
    const settings = { scheme: 'https' as const, ttlSeconds: 10, compileCache: false }
    const server = await startServer({ ...OURS, entry }, oursEnv(env, settings), 'https')
    builds.push({ entry, server, us: [] })
  }
  const round = async (seconds: number, record: boolean) => {
    const before = builds.map((build) => cpuMs(build.server.child.pid))
    const results = await Promise.all(
      builds.map((build) => runLoad({ url: build.server.url, body, seconds, rate: RATE })),
    )
    builds.forEach((build, index) => {
      const result = results[index]
      if (result === undefined || result.errors > 0) throw new Error(`${build.entry}: errors`)
      const used = cpuMs(build.server.child.pid) - (before[index] ?? 0)
      if (record) build.us.push((used * 1000) / result.ok)
    })
  }
  await round(2, false) // warm-up
  for (let index = 0; index < Number(values.rounds); index++) {
    await round(Number(values.seconds), true)
  }
} finally {
  for (const build of builds) await build.server.child.stop()
  await env.close()
}
const [first] = builds
console.log(`HTTPS, typical pod, all builds loaded together at ${RATE} req/s each:`)
for (const build of builds) {
  const ratios = build.us.map((us, index) => us / (first?.us[index] ?? Number.NaN))
  console.log(
    `${median(build.us).toFixed(0).padStart(5)} µs CPU/review  ${median(ratios).toFixed(3)}x of the first  ` +
      `(rounds: ${ratios.map((v) => v.toFixed(2)).join(' ')})  ${build.entry}`,
  )
}
