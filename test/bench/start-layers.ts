/**
 * `npm run bench:start-layers`: what a start costs layer by layer, spawn → listening (the first TCP connect that
 * succeeds), paired and interleaved rounds, every side pinned like the bench's servers and started with ours'
 * node flags: bare `node -e 0` (spawn → exit), a bare `node:http` server, a bare `node:https` server, a minimal
 * Hono app on @hono/node-server (bundled by esbuild like ours, with its own warmed compile cache), and ours
 * (dist/handler.js, Knative HTTP mode, warmed compile cache, in-cluster settings; it GETs nothing before
 * listening). Prints wall and CPU medians and each side's ratio to the bare start. No load, no API calls.
 * Options: --runs N (default 11); --also DIR (repeatable): one more side, DIR/handler.js started like ours with a
 * compile cache warmed for it, to compare another build of ours in the same rounds (e.g. an older commit's dist/).
 * @module
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { freePort, ROOT } from '../support/process.ts'
import { createTestCertificates } from '../support/tls.ts'
import { pinSelf, SERVER_CPU, spawnNode } from './child.ts'
import { type CompileCache, type Program, warmCompileCache } from './image-command.ts'
import { fixed, machineLines, median } from './report.ts'
import { ensureBuild, OURS } from './setup.ts'
import { bareStart, firstConnect } from './startup.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '11' },
    also: { type: 'string', multiple: true, default: [] },
  },
})
const RUNS = Number(values.runs)

const LISTEN = "listen(Number(process.env.PORT), '127.0.0.1')"
const HONO = `import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { flushCompileCache } from 'node:module'
const app = new Hono()
app.get('/', (c) => c.text('ok'))
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' }, () => flushCompileCache())
`

interface Side {
  readonly name: string
  readonly program: Program
  readonly env: Record<string, string>
}

/** Spawn → listening: wall ms and CPU ms (10 ms ticks) at that moment. */
async function listening(side: Side): Promise<{ wall: number; cpu: number }> {
  const port = await freePort()
  const child = spawnNode(side.program.entry, { ...side.env, PORT: String(port) }, SERVER_CPU, [
    ...side.program.nodeArgs,
  ])
  try {
    const { socket, wall, cpu } = await firstConnect(child, port, side.name)
    socket.destroy()
    return { wall, cpu }
  } finally {
    await child.stop()
  }
}

pinSelf()
for (const line of machineLines()) console.log(line)
console.log(ensureBuild())
const dir = mkdtempSync(join(tmpdir(), 'irsa-start-layers-'))
const caches: CompileCache[] = []
try {
  const certs = createTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
  // The in-cluster client reads token and ca.crt at start.
  const serviceAccountDir = join(dir, 'serviceaccount')
  mkdirSync(serviceAccountDir)
  writeFileSync(join(serviceAccountDir, 'token'), 'unused')
  writeFileSync(join(serviceAccountDir, 'ca.crt'), certs.caPem)
  await build({
    stdin: { contents: HONO, resolveDir: ROOT, loader: 'ts' },
    outfile: join(dir, 'hono.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    logLevel: 'warning',
  })
  const flags = OURS.nodeArgs
  const cache = (name: string) => ({ NODE_COMPILE_CACHE: join(dir, `cache-${name}`) })
  const https = `const { readFileSync: r } = require('node:fs'); require('node:https').createServer({ cert: r(process.env.TLS_CERT_PATH), key: r(process.env.TLS_KEY_PATH) }, (q, s) => s.end('ok')).${LISTEN}`
  const sides: Side[] = [
    {
      name: 'node:http server',
      program: {
        entry: `require('node:http').createServer((q, s) => s.end('ok')).${LISTEN}`,
        nodeArgs: [...flags, '-e'],
      },
      env: {},
    },
    {
      name: 'node:https server',
      program: { entry: https, nodeArgs: [...flags, '-e'] },
      env: { TLS_CERT_PATH: certs.certPath, TLS_KEY_PATH: certs.keyPath },
    },
    {
      name: 'Hono + @hono/node-server',
      program: { entry: join(dir, 'hono.mjs'), nodeArgs: flags },
      env: cache('hono'),
    },
    ...[ROOT, ...values.also].map((build, index) => {
      const dist = index === 0 ? join(ROOT, 'dist') : resolve(build)
      const program = { entry: join(dist, 'handler.js'), nodeArgs: flags }
      // As the bench does: the image's compile cache, written by scripts/warm-compile-cache.ts.
      const compiled = warmCompileCache(program, dist)
      caches.push(compiled)
      return {
        name: index === 0 ? 'ours (dist/handler.js)' : `ours (${build})`,
        program,
        env: {
          NODE_COMPILE_CACHE: compiled.dir,
          K_SERVICE: 'layers',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'warn',
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
          KUBE_SERVICEACCOUNT_DIR: serviceAccountDir,
        },
      }
    }),
  ]
  // One unmeasured start each writes the compile caches.
  for (const side of sides) await listening(side)
  const bare: { wall: number; cpu: number }[] = []
  const times = new Map(sides.map((side) => [side.name, [] as { wall: number; cpu: number }[]]))
  for (let run = 0; run < RUNS; run += 1) {
    const order = [undefined, ...sides]
    const rotated = [...order.slice(run % order.length), ...order.slice(0, run % order.length)]
    for (const side of rotated) {
      if (side === undefined) bare.push(await bareStart({ entry: '', nodeArgs: flags }, {}))
      else times.get(side.name)?.push(await listening(side))
    }
  }
  const bareWall = median(bare.map((t) => t.wall))
  const bareCpu = median(bare.map((t) => t.cpu))
  console.log(
    `node ${flags.join(' ')}; ${RUNS} interleaved rounds; spawn → listening (bare: spawn → exit)`,
  )
  console.log(
    `${'bare node -e 0'.padEnd(26)} wall ${fixed(bareWall, 0).padStart(4)} ms  CPU ${fixed(bareCpu, 0).padStart(4)} ms  1.00x`,
  )
  for (const side of sides) {
    const list = times.get(side.name) ?? []
    const wall = median(list.map((t) => t.wall))
    const cpu = median(list.map((t) => t.cpu))
    console.log(
      `${side.name.padEnd(26)} wall ${fixed(wall, 0).padStart(4)} ms  CPU ${fixed(cpu, 0).padStart(4)} ms  ${fixed(wall / bareWall)}x wall, ${fixed(cpu / bareCpu)}x CPU`,
    )
  }
  rmSync(certs.dir, { recursive: true, force: true })
} finally {
  for (const cache of caches) cache.close()
  rmSync(dir, { recursive: true, force: true })
}
