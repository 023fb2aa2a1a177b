import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { runChild } from '../support/cli-fake-cluster.ts'
import { type ChildServer, poll, ROOT, send, spawnServer } from '../support/process.ts'
import { admit } from '../support/webhook.ts'

const fixtures = new URL('../fixtures/admission/', import.meta.url)
const read = (name: string) => readFileSync(new URL(name, fixtures), 'utf8')
const SA_FILES = ['serviceaccount-irsa-sa.json', 'serviceaccount-plain-sa.json']
const serviceAccounts = SA_FILES.map((name) => JSON.parse(read(name)) as object)
const review = JSON.parse(read('pod-irsa-single-container.json'))

let dir: string
let saFile: string
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'irsa-bundle-'))
  saFile = join(dir, 'service-accounts.yaml')
  writeFileSync(saFile, SA_FILES.map(read).join('\n---\n'))
})
after(() => rmSync(dir, { recursive: true, force: true }))

/** Starts `entry` in Knative mode and measures spawn → first 200 from /readyz. */
async function startTimed(entry: string) {
  const server = await spawnServer({
    entry,
    env: { K_SERVICE: 'irsa-webhook', HOST: '127.0.0.1', PORT: '0', SERVICE_ACCOUNTS_FILE: saFile },
  })
  try {
    await poll(async () => {
      const reply = await send({ port: server.port }, 'GET', '/readyz')
      return reply.status === 200 ? true : undefined
    }, `${entry} to be ready`)
    return { server, startupMs: Math.round(performance.now() - server.spawnedAt) }
  } catch (error) {
    await server.stop()
    throw error
  }
}

const postReview = (server: ChildServer) =>
  send({ port: server.port }, 'POST', '/mutate?timeout=10s', JSON.stringify(review))

describe('the esbuild bundles (dist/handler.js, dist/cli.js)', () => {
  before(async () => {
    const built = await promisify(execFile)(process.execPath, ['scripts/build.ts'], {
      cwd: ROOT,
      timeout: 120_000,
    })
    process.stdout.write(`# ${built.stdout.trim()}\n`)
  })

  it('starts, is ready, and answers the real fixture with the in-process patch', async (t) => {
    assert.ok(existsSync(join(ROOT, 'dist/handler.js')))
    const { server, startupMs } = await startTimed('dist/handler.js')
    t.after(() => server.stop())
    t.diagnostic(`dist/handler.js: spawn → first 200 from /readyz in ${startupMs} ms`)
    const reply = await postReview(server)
    assert.equal(reply.status, 200)
    const expected = await admit(review, serviceAccounts)
    assert.ok(expected.patch.length > 0)
    assert.deepEqual(JSON.parse(reply.text), expected.body)
  })

  it('keeps @kubernetes/client-node out of what the default path loads, in a chunk of its own', () => {
    const main = readFileSync(join(ROOT, 'dist/handler.js'), 'utf8')
    const staticChunks = [...main.matchAll(/^import [^;]*? from "\.\/(chunks\/[^"]+)";$/gms)].map(
      (match) => match[1] ?? '',
    )
    const loadedAtStart = [
      main,
      ...staticChunks.map((c) => readFileSync(join(ROOT, 'dist', c), 'utf8')),
    ]
    for (const code of loadedAtStart) assert.doesNotMatch(code, /\bObjectCoreV1Api = class\b/)
    const lazy = readdirSync(join(ROOT, 'dist/chunks')).filter(
      (name) => name.startsWith('kube-client-node-') && name.endsWith('.js'),
    )
    assert.equal(lazy.length, 1)
    assert.match(
      readFileSync(join(ROOT, 'dist/chunks', lazy[0] ?? ''), 'utf8'),
      /\bObjectCoreV1Api = class\b/,
    )
  })

  it('leaves what the webhook does not use of zod (its locales) out of what a start loads', () => {
    const main = readFileSync(join(ROOT, 'dist/handler.js'), 'utf8')
    const chunks = [...main.matchAll(/^import [^;]*? from "\.\/(chunks\/[^"]+)";$/gms)].map(
      (match) => readFileSync(join(ROOT, 'dist', match[1] ?? ''), 'utf8'),
    )
    const zod = chunks.filter((code) => code.includes('node_modules/zod/'))
    assert.equal(zod.length, 1, 'zod is in one chunk loaded at start')
    // esbuild marks each bundled file with a `// node_modules/...` comment; English is the one locale in use.
    const locales = [...(zod[0] ?? '').matchAll(/^\/\/ node_modules\/zod\/v4\/locales\/(\S+)$/gm)]
    assert.deepEqual(
      locales.map((match) => match[1]),
      ['en.js'],
    )
  })

  it('starts from the compile cache that the image build writes (scripts/warm-compile-cache.ts)', async (t) => {
    const cache = join(dir, 'compile-cache')
    const warm = await promisify(execFile)(
      process.execPath,
      ['scripts/warm-compile-cache.ts', join(ROOT, 'dist')],
      {
        cwd: ROOT,
        env: { PATH: process.env['PATH'] ?? '', NODE_COMPILE_CACHE: cache },
        timeout: 60_000,
      },
    ).catch((error: { stdout?: string; code?: number }) => error)
    // The warm-up stops at config validation on purpose (exit 1) after writing the cache.
    assert.match(String(warm.stdout), /compile cache written to/)
    const server = await spawnServer({
      entry: 'dist/handler.js',
      env: {
        K_SERVICE: 'irsa-webhook',
        HOST: '127.0.0.1',
        PORT: '0',
        SERVICE_ACCOUNTS_FILE: saFile,
        NODE_COMPILE_CACHE: cache,
        NODE_DEBUG_NATIVE: 'COMPILE_CACHE',
      },
    })
    t.after(() => server.stop())
    assert.match(
      server.stderr(),
      /V8 code cache for ESM file:\/\/\S*\/dist\/handler\.js was accepted/,
    )
    assert.equal((await postReview(server)).status, 200)
  })

  it('dist/cli.js is the whole CLI: --help exits 0 and every command answers as bin/irsa-webhook.ts does', async () => {
    const run = (entry: string, args: string[]) => runChild(args, '', entry)
    const help = await run('dist/cli.js', ['--help'])
    assert.equal(help.code, 0, help.stderr)
    assert.deepEqual(help, await run('bin/irsa-webhook.ts', ['--help']))
    const commands = [...help.stdout.matchAll(/^ {2}([a-z][\w-]+) /gm)].map((m) => m[1] ?? '')
    assert.ok(commands.includes('mutate') && commands.includes('doctor'), help.stdout)
    for (const command of commands) {
      const bundled = await run('dist/cli.js', [command, '--help'])
      assert.equal(bundled.code, 0, `${command} --help: ${bundled.stderr}`)
      assert.deepEqual(bundled, await run('bin/irsa-webhook.ts', [command, '--help']), command)
    }
    // A real command end to end through the bundle (YAML parsing, the decision code, the patch).
    const args = ['mutate', '--service-account', 'examples/cli/sa.yaml', 'examples/cli/web.yaml']
    const mutated = await run('dist/cli.js', args)
    assert.equal(mutated.code, 0, mutated.stderr)
    assert.match(mutated.stdout, /AWS_ROLE_ARN/)
    assert.deepEqual(mutated, await run('bin/irsa-webhook.ts', args))
  })

  it("carries package.json's version inlined: a copy of dist/ alone logs it and exports it as build_info", async (t) => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string
    }
    // Outside the repository: no package.json above the copy but dist/'s own {"type":"module"}.
    const alone = join(dir, 'alone')
    cpSync(join(ROOT, 'dist'), join(alone, 'dist'), { recursive: true })
    const { server } = await startTimed(join(alone, 'dist/handler.js'))
    t.after(() => server.stop())
    assert.equal(server.logs.find((line) => line['msg'] === 'listening')?.['version'], version)
    const metrics = await send({ port: server.port }, 'GET', '/metrics')
    assert.ok(
      metrics.text.includes(
        `irsa_webhook_build_info{version="${version}",node="${process.version}"} 1\n`,
      ),
      metrics.text.slice(0, 400),
    )
  })

  it('measures the unbundled handler.ts start-up for comparison (info only)', async (t) => {
    const { server, startupMs } = await startTimed('handler.ts')
    t.after(() => server.stop())
    t.diagnostic(`handler.ts: spawn → first 200 from /readyz in ${startupMs} ms`)
    assert.equal((await postReview(server)).status, 200)
  })
})
