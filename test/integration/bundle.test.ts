import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
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

describe('the esbuild bundle (dist/handler.js)', () => {
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

  it('measures the unbundled handler.ts start-up for comparison (info only)', async (t) => {
    const { server, startupMs } = await startTimed('handler.ts')
    t.after(() => server.stop())
    t.diagnostic(`handler.ts: spawn → first 200 from /readyz in ${startupMs} ms`)
    assert.equal((await postReview(server)).status, 200)
  })
})
