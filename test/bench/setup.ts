/**
 * Shared bench/soak setup: an up-to-date bundle, throwaway TLS certificates, the fake kube-apiserver (api-env.ts),
 * the compile cache of the bundle, and the command and env of each server (ours = `node <start flags>
 * dist/handler.js` with `NODE_COMPILE_CACHE`, as the image runs it; the floor = plain `node
 * test/bench/floor-server.ts`, the reference).
 * Both reach the API in-cluster style (the production path); `lookup: 'kubeconfig'` starts ours with `KUBECONFIG`
 * instead (the @kubernetes/client-node path, informational).
 * @module
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, ROOT } from '../support/process.ts'
import { createTestCertificates } from '../support/tls.ts'
import { inClusterEnv, type KubeApi, startKubeApi } from './api-env.ts'
import { type Child, get, SERVER_CPU, spawnNode } from './child.ts'
import { type CompileCache, type Program, startFlags, warmCompileCache } from './image-command.ts'

const OURS_ENTRY = 'dist/handler.js'
/** Ours as the image runs it: the node flags of package.json's `start` script (== the Dockerfile CMD). */
export const OURS: Program = { entry: OURS_ENTRY, nodeArgs: startFlags(OURS_ENTRY) }
/** The reference: no flags, no compile cache. */
export const FLOOR: Program = { entry: 'test/bench/floor-server.ts', nodeArgs: [] }

/** Header lines: how each side is started. */
export function commandLines(env: Environment): string[] {
  return [
    `ours:  node ${[...OURS.nodeArgs, OURS.entry].join(' ')} (flags from package.json "start" = image CMD)`,
    `       ${env.compileCache.summary}`,
    `floor: node ${FLOOR.entry} (no flags, no compile cache)`,
  ]
}

export type Scheme = 'http' | 'https'

function newestSource(): number {
  const files = [
    'handler.ts',
    'package-lock.json',
    'scripts/build.ts',
    ...readdirSync(join(ROOT, 'function')).map((name) => `function/${name}`),
  ]
  return Math.max(...files.map((file) => statSync(join(ROOT, file)).mtimeMs))
}

/** Runs `npm run build`'s script when dist/handler.js is missing or older than a source; returns what it did. */
export function ensureBuild(): string {
  const bundle = join(ROOT, OURS_ENTRY)
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= newestSource()) {
    return `${OURS_ENTRY} is up to date`
  }
  return execFileSync(process.execPath, ['scripts/build.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
  }).trim()
}

export interface Environment {
  /** The servers' own serving certificate (HTTPS runs). */
  readonly certPath: string
  readonly keyPath: string
  readonly api: KubeApi
  /** Node's compile cache of dist/, warmed for this run (ours only). */
  readonly compileCache: CompileCache
  close(): Promise<void>
}

/**
 * Serving certificates for 127.0.0.1, the fake kube-apiserver (a child on the load generator's CPU) and the
 * compile cache of the bundle (call after ensureBuild).
 */
export async function startEnvironment(): Promise<Environment> {
  const compileCache = warmCompileCache(OURS)
  const certs = createTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
  const api = await startKubeApi()
  return {
    certPath: certs.certPath,
    keyPath: certs.keyPath,
    api,
    compileCache,
    async close() {
      await api.close()
      rmSync(certs.dir, { recursive: true, force: true })
      compileCache.close()
    },
  }
}

export interface ServerSettings {
  readonly scheme: Scheme
  readonly ttlSeconds: number
  readonly logLevel?: string
  readonly port?: number
  readonly extra?: Record<string, string>
  /** How ours reaches the API: in-cluster credentials (default, production) or a kubeconfig (client-node). */
  readonly lookup?: 'in-cluster' | 'kubeconfig'
  /** Ours with NODE_COMPILE_CACHE (default true, as in the image); false for the informational cold start. */
  readonly compileCache?: boolean
}

function schemeEnv(env: Environment, scheme: Scheme): Record<string, string> {
  return scheme === 'http'
    ? { K_SERVICE: 'bench' }
    : { TLS_CERT_PATH: env.certPath, TLS_KEY_PATH: env.keyPath }
}

export function oursEnv(env: Environment, settings: ServerSettings): Record<string, string> {
  return {
    HOST: '127.0.0.1',
    PORT: String(settings.port ?? 0),
    ...(settings.lookup === 'kubeconfig'
      ? { KUBECONFIG: env.api.kubeconfig }
      : inClusterEnv(env.api)),
    SA_CACHE_TTL_SECONDS: String(settings.ttlSeconds),
    LOG_LEVEL: settings.logLevel ?? 'warn',
    ...(settings.compileCache === false ? {} : { NODE_COMPILE_CACHE: env.compileCache.dir }),
    ...schemeEnv(env, settings.scheme),
    ...settings.extra,
  }
}

export function floorEnv(env: Environment, settings: ServerSettings): Record<string, string> {
  return {
    PORT: String(settings.port ?? 0),
    ...inClusterEnv(env.api),
    SA_CACHE_TTL_SECONDS: String(settings.ttlSeconds),
    ...schemeEnv(env, settings.scheme),
  }
}

export interface Running {
  readonly child: Child
  readonly url: string
}

/** Resolves once anything answers HTTP(S) at `url` (ours logs nothing at LOG_LEVEL=warn); bounded. */
export async function waitUntilAnswering(child: Child, url: string, timeoutMs = 20_000) {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (child.child.exitCode !== null) throw new Error(`server exited ${child.child.exitCode}`)
    try {
      await get(url)
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  throw new Error(`nothing answered at ${url} within ${timeoutMs} ms`)
}

/**
 * Spawns a server on a free port, pinned to the server CPU, and waits until it answers; `url` is its /mutate URL.
 * The port can be taken by another process between the probe and the spawn, so a failed start is retried.
 */
export async function startServer(
  program: Program,
  env: Record<string, string>,
  scheme: Scheme,
  attempts = 3,
): Promise<Running> {
  const { entry, nodeArgs } = program
  const port = await freePort()
  const child = spawnNode(entry, { ...env, PORT: String(port) }, SERVER_CPU, nodeArgs)
  const base = `${scheme}://127.0.0.1:${port}`
  try {
    await waitUntilAnswering(child, `${base}/healthz`)
  } catch (error) {
    await child.stop()
    if (attempts <= 1) throw new Error(`${entry}: ${(error as Error).message}\n${child.stderr()}`)
    return startServer(program, env, scheme, attempts - 1)
  }
  return { child, url: `${base}/mutate?timeout=10s` }
}
