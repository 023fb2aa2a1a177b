/**
 * The real Helm of the test suite: `helm` built from the `helm.sh/helm/v4` Go module that test/tools/helm/go.mod
 * pins (a `tool` directive), into a cache outside the work tree keyed by the Helm and Go versions, and reused when
 * present. Go is test infrastructure only, as for the control plane (test/cluster/).
 *
 *   npm run helm:build      # build when missing; print `helm version` and the path
 *
 * Where: `$IRSA_CLUSTER_CACHE` (default `$XDG_CACHE_HOME/irsa-webhook`, else `~/.cache/irsa-webhook`), then
 * `helm/<helm version>-<go version>/helm`, e.g. `helm/v4.3.2-go1.26.8/helm`. The binary is written under a temporary
 * name and renamed into place, so a path that exists is a finished build; concurrent callers (test files run in
 * parallel) wait on one lock directory instead of building twice. A first build from empty Go caches takes about
 * 7 CPU-minutes (12.6 minutes of wall time on the project's busy 2-core machine), 540 MB of Go module cache, 1.2 GB of
 * Go build cache and a 64 MB binary (CONTRIBUTING.md has the measurement); later calls return at once.
 *
 * Test files call `helmOrSkip()` at the top: the path of the binary, or a skip reason when there is no Go toolchain
 * and no finished build — except in CI (`CI=true`), where the missing toolchain is an error, so a CI run can never
 * pass by skipping the Helm tests.
 *
 * Exit codes of `npm run helm:build` (the test script runs it before the tests, as it runs cluster:build): 0 built
 * or already there, or no Go toolchain outside CI (the Helm tests then skip, saying why); 1 a build step failed (the
 * message names the step and its log); 3 no Go toolchain in CI (`CI=true`).
 * @module
 */
import { execFile, spawn, spawnSync } from 'node:child_process'
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

const MODULE_DIR = new URL('../tools/helm/', import.meta.url).pathname
const HELM_MODULE = 'helm.sh/helm/v4'

/** Thrown when there is no Go toolchain to build Helm with (and no finished build to use). */
export class NoGoToolchain extends Error {}
export class BuildStepFailed extends Error {}

const run = promisify(execFile)

/** The Helm version test/tools/helm/go.mod requires. */
export function helmVersion(): string {
  const goMod = readFileSync(join(MODULE_DIR, 'go.mod'), 'utf8')
  const match = /^\s*helm\.sh\/helm\/v4\s+(v\S+)/m.exec(goMod)
  if (match?.[1] === undefined)
    throw new Error(`test/tools/helm/go.mod does not require ${HELM_MODULE}`)
  return match[1]
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env['IRSA_CLUSTER_CACHE'] ??
    join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'irsa-webhook')
  )
}

async function goVersion(env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run('go', ['env', 'GOVERSION'], {
      env: { ...env, GOTOOLCHAIN: 'local' },
    })
    return stdout.trim()
  } catch {
    throw new NoGoToolchain(
      `no Go toolchain: \`go\` is not on PATH. The Helm tests build helm ${helmVersion()} from its Go module ` +
        '(test/tools/helm/go.mod); install Go 1.26 or newer and make sure the Go module proxy is reachable, then ' +
        'run `npm run helm:build`.',
    )
  }
}

/** A finished build of `version` made by any Go version (the last directory name in sort order wins), if any. */
function existingBuild(root: string, version: string): string | undefined {
  if (!existsSync(root)) return undefined
  return readdirSync(root)
    .filter((name) => name.startsWith(`${version}-`) && existsSync(join(root, name, 'helm')))
    .sort()
    .map((name) => join(root, name, 'helm'))
    .at(-1)
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Takes `lock` (a directory holding the owner's pid); false when another process holds it. */
function tryLock(lock: string): boolean {
  try {
    mkdirSync(lock)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  writeFileSync(join(lock, 'pid'), String(process.pid))
  return true
}

/** The pid in `lock`, or 0 when it is not written yet (or the lock was just released). */
function lockOwner(lock: string): number {
  try {
    return Number(readFileSync(join(lock, 'pid'), 'utf8'))
  } catch {
    return 0
  }
}

/**
 * Holds `lock` while `work` runs. Another process holding it is waited for until `done()`; a lock whose owner is
 * gone, or whose owner never wrote its pid within 30 s (it died between mkdir and writeFile), is taken over.
 */
async function withLock<T>(
  lock: string,
  done: () => boolean,
  work: () => Promise<T>,
  log: (line: string) => void,
): Promise<T | undefined> {
  let waitingSince: number | undefined
  while (!tryLock(lock)) {
    const owner = lockOwner(lock)
    const now = Date.now()
    if (waitingSince === undefined)
      log(`another process (pid ${owner || '?'}) is building helm; waiting for it`)
    waitingSince ??= now
    if ((owner > 0 && !alive(owner)) || (owner === 0 && now - waitingSince > 30_000)) {
      rmSync(lock, { recursive: true, force: true })
      continue
    }
    await sleep(1000)
    if (done()) return undefined
  }
  try {
    return await work()
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/**
 * The path of the `helm` binary for the pinned version: from the cache, or built now. Throws NoGoToolchain when Go
 * is missing (and no build of this Helm version exists) and BuildStepFailed (naming the step and its log) when a
 * step fails. `log` receives progress lines.
 */
export async function ensureHelm(
  options: { log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const env = options.env ?? process.env
  const log = options.log ?? ((line: string) => process.stderr.write(`helm:build: ${line}\n`))
  const version = helmVersion()
  const root = join(cacheRoot(env), 'helm')
  const go = await goVersion(env).catch((error: unknown) => {
    if (existingBuild(root, version) !== undefined) return undefined
    throw error
  })
  if (go === undefined) return existingBuild(root, version) as string
  const dir = join(root, `${version}-${go}`)
  const binary = join(dir, 'helm')
  if (existsSync(binary)) return binary
  mkdirSync(dir, { recursive: true })
  await withLock(
    join(dir, 'lock'),
    () => existsSync(binary),
    () => build(),
    log,
  )
  if (!existsSync(binary)) throw new BuildStepFailed(`helm build finished without ${binary}`)
  return binary

  async function build(): Promise<void> {
    if (existsSync(binary)) return
    const logPath = join(dir, 'build.log')
    const logFile = createWriteStream(logPath)
    const started = performance.now()
    const step = async (name: string, args: string[]) => {
      const at = performance.now()
      log(`${name} …`)
      logFile.write(`\n$ go ${args.join(' ')}   (in ${MODULE_DIR})\n`)
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn('go', args, {
          cwd: MODULE_DIR,
          env: { ...env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly', CGO_ENABLED: '0' },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        child.stdout.pipe(logFile, { end: false })
        child.stderr.pipe(logFile, { end: false })
        child.once('error', reject)
        child.once('close', resolve)
      })
      if (code !== 0) {
        await new Promise((resolve) => logFile.end(resolve))
        const tail = readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
        throw new BuildStepFailed(
          `helm build step "${name}" failed (exit ${code}); full log: ${logPath}\n${tail}`,
        )
      }
      log(`${name}: done in ${((performance.now() - at) / 1000).toFixed(0)} s`)
    }
    log(`building helm ${version} with ${go} into ${dir}`)
    log(
      'a first build takes about 7 CPU-minutes (4 minutes on 2 idle cores); later runs reuse it (CONTRIBUTING.md)',
    )
    await step('go mod download', ['mod', 'download'])
    // What helm's Makefile sets for a release build (internal/version): `helm version` then reports the tag, not
    // "v4.3+unreleased". The module zip has no git history, so no commit; the tree is the released module, clean.
    const ldflags = [
      '-s -w',
      `-X ${HELM_MODULE}/internal/version.version=${version}`,
      `-X ${HELM_MODULE}/internal/version.metadata=`,
      `-X ${HELM_MODULE}/internal/version.gitTreeState=clean`,
    ].join(' ')
    const partial = join(dir, `helm.partial-${process.pid}`)
    await step('go build helm', [
      'build',
      '-trimpath',
      '-ldflags',
      ldflags,
      '-o',
      partial,
      `${HELM_MODULE}/cmd/helm`,
    ])
    await new Promise((resolve) => logFile.end(resolve))
    renameSync(partial, binary)
    log(`built in ${((performance.now() - started) / 1000).toFixed(0)} s`)
  }
}

/**
 * For test files: the helm binary, or the reason to skip. Outside CI a missing Go toolchain is a skip with a clear
 * message; in CI (`CI=true`) it throws, so the suite fails instead of passing without the Helm tests.
 */
export async function helmOrSkip(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ helm: string; skip: false } | { helm: undefined; skip: string }> {
  try {
    return { helm: await ensureHelm({ env }), skip: false }
  } catch (error) {
    if (error instanceof NoGoToolchain && env['CI'] !== 'true')
      return { helm: undefined, skip: `skipped: ${error.message}` }
    throw error
  }
}

/** Helm's own state (repository cache, registry config, plugins) for this test process: a scratch dir, not ~/.config. */
let helmHome: string | undefined
function scratchHome(): string {
  if (helmHome === undefined) {
    const home = mkdtempSync(join(tmpdir(), 'irsa-helm-home-'))
    process.once('exit', () => rmSync(home, { recursive: true, force: true }))
    helmHome = home
  }
  return helmHome
}

export interface HelmRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs `helm ARGS` (bounded, 120 s) with its state in a scratch directory and no kubeconfig but the one given;
 * `input` is its stdin (`-f -`).
 */
export function runHelm(
  helm: string,
  args: readonly string[],
  options: { kubeconfig?: string; input?: string; cwd?: string } = {},
): HelmRun {
  const home = scratchHome()
  const run = spawnSync(helm, args, {
    cwd: options.cwd,
    input: options.input,
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: home,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
      KUBECONFIG: options.kubeconfig ?? join(home, 'no-kubeconfig'),
    },
  })
  if (run.error) throw run.error
  return { code: run.status, stdout: run.stdout, stderr: run.stderr }
}

if (import.meta.main) {
  try {
    const helm = await ensureHelm()
    const { stdout } = await run(helm, ['version'])
    process.stdout.write(`${stdout.trim()}\n${helm}\n`)
  } catch (error) {
    process.stderr.write(`helm:build: ${(error as Error).message}\n`)
    if (error instanceof NoGoToolchain && process.env['CI'] !== 'true')
      process.stderr.write(
        'helm:build: the Helm tests will be skipped (in CI, CI=true, this fails)\n',
      )
    else process.exitCode = error instanceof NoGoToolchain ? 3 : 1
  }
}
