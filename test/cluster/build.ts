/**
 * Builds the real control plane of the test suite — `etcd`, `kube-apiserver`, `kube-controller-manager` — from the
 * Go module beside this file (test/cluster/go.mod pins k8s.io/kubernetes and go.etcd.io/etcd/server/v3), into a
 * cache outside the work tree keyed by the versions, and reuses it when present. Go is test infrastructure only.
 *
 *   npm run cluster:build                                  # build when missing; print the version and the path
 *   IRSA_KUBERNETES_VERSION=v1.36.3 npm run cluster:build  # another Kubernetes release (module rewritten in a temp dir)
 *
 * Where: `$IRSA_CLUSTER_CACHE` (default `$XDG_CACHE_HOME/irsa-webhook`, else `~/.cache/irsa-webhook`), then
 * `control-plane/k8s-<version>_etcd-<version>_<go version>/bin`. A build is used only once its `complete` marker is
 * written, so an interrupted build is redone, never half-used. The Go module and build caches (`go env GOMODCACHE
 * GOCACHE`) are what make a rebuild after a version change fast.
 *
 * Exit codes: 0 built or already there, or no Go toolchain outside CI (the control-plane tests then skip, saying
 * why); 1 a build step failed (the message names the step and its log); 3 no Go toolchain in CI (`CI=true`), where
 * a missing toolchain fails the run instead of skipping it.
 * @module
 */
import { execFile, spawn } from 'node:child_process'
import {
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const MODULE_DIR = new URL('./', import.meta.url).pathname

/** The binaries the harness runs, each with the package it is built from. */
const COMPONENTS = [
  { name: 'etcd', pkg: 'go.etcd.io/etcd/server/v3' },
  { name: 'kube-apiserver', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver' },
  { name: 'kube-controller-manager', pkg: 'k8s.io/kubernetes/cmd/kube-controller-manager' },
] as const
export type Component = (typeof COMPONENTS)[number]['name']

export interface ControlPlaneBinaries {
  readonly kubernetesVersion: string
  readonly etcdVersion: string
  readonly dir: string
  readonly path: (component: Component) => string
}

/** Thrown when there is no Go toolchain to build the control plane with (and no finished build to use). */
export class NoGoToolchain extends Error {}
export class BuildStepFailed extends Error {}

const run = promisify(execFile)

/** The version go.mod requires for `module`. */
function required(goMod: string, module: string): string {
  const match = new RegExp(`^\\s*${module.replaceAll('.', '\\.')}\\s+(v\\S+)`, 'm').exec(goMod)
  if (match?.[1] === undefined) throw new Error(`test/cluster/go.mod does not require ${module}`)
  return match[1]
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env['IRSA_CLUSTER_CACHE'] ??
    join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'irsa-webhook')
  )
}

async function goVersion(): Promise<string> {
  try {
    const { stdout } = await run('go', ['env', 'GOVERSION'], {
      env: { ...process.env, GOTOOLCHAIN: 'local' },
    })
    return stdout.trim()
  } catch {
    throw new NoGoToolchain(
      'no Go toolchain: `go` is not on PATH. The control-plane tests build kube-apiserver, kube-controller-manager ' +
        'and etcd from their Go modules (test/cluster/go.mod); install Go 1.26 or newer and make sure the Go ' +
        'module proxy is reachable, then run `npm run cluster:build`.',
    )
  }
}

/** A copy of the module with every k8s.io module moved to another release (IRSA_KUBERNETES_VERSION). */
async function moduleFor(
  version: string,
  log: (line: string) => void,
  step: Step,
): Promise<string> {
  const pinned = required(readFileSync(join(MODULE_DIR, 'go.mod'), 'utf8'), 'k8s.io/kubernetes')
  if (version === pinned) return MODULE_DIR
  if (!/^v1\.\d+\.\d+$/.test(version))
    throw new Error(
      `IRSA_KUBERNETES_VERSION must look like v1.37.2, got ${JSON.stringify(version)}`,
    )
  const dir = mkdtempSync(join(tmpdir(), 'irsa-cluster-module-'))
  cpSync(join(MODULE_DIR, 'go.mod'), join(dir, 'go.mod'))
  cpSync(join(MODULE_DIR, 'go.sum'), join(dir, 'go.sum'))
  const staging = version.replace(/^v1\./, 'v0.')
  const goMod = readFileSync(join(dir, 'go.mod'), 'utf8')
  const replaced = goMod
    .replace(/^(\s*k8s\.io\/kubernetes\s+)v\S+/m, `$1${version}`)
    .replace(/^(\s*(k8s\.io\/[\w.-]+) => \2 )v0\.\d+\.\d+$/gm, `$1${staging}`)
  writeFileSync(join(dir, 'go.mod'), replaced)
  log(`module rewritten for ${version} (staging modules ${staging}) in ${dir}`)
  await step('go mod tidy', 'go', ['mod', 'tidy'], dir)
  return dir
}

type Step = (name: string, command: string, args: string[], cwd: string) => Promise<void>

/**
 * The binaries for `IRSA_KUBERNETES_VERSION` (default: the version test/cluster/go.mod pins): from the cache, or
 * built now. Throws NoGoToolchain when Go is missing and BuildStepFailed (naming the step and its log) when a step
 * fails. `log` receives progress lines.
 */
export async function ensureControlPlaneBinaries(
  options: { log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<ControlPlaneBinaries> {
  const env = options.env ?? process.env
  const log = options.log ?? ((line: string) => process.stderr.write(`cluster:build: ${line}\n`))
  const goMod = readFileSync(join(MODULE_DIR, 'go.mod'), 'utf8')
  const kubernetesVersion = env['IRSA_KUBERNETES_VERSION'] ?? required(goMod, 'k8s.io/kubernetes')
  const etcdVersion = required(goMod, 'go.etcd.io/etcd/server/v3')
  const key = `k8s-${kubernetesVersion}_etcd-${etcdVersion}`
  const found = (dir: string): ControlPlaneBinaries => ({
    kubernetesVersion,
    etcdVersion,
    dir,
    path: (component) => join(dir, 'bin', component),
  })
  // A finished build for this key, whichever Go built it, needs no Go at all.
  const marker = (dir: string) => join(dir, 'complete')
  const root = join(cacheRoot(env), 'control-plane')
  const go = await goVersion().catch((error: unknown) => {
    const any = existingBuild(root, key, marker)
    if (any !== undefined) return undefined
    throw error
  })
  if (go === undefined) return found(existingBuild(root, key, marker) as string)
  const dir = join(root, `${key}_${go}`)
  if (existsSync(marker(dir))) return found(dir)

  rmSync(dir, { recursive: true, force: true })
  mkdirSync(join(dir, 'bin'), { recursive: true })
  const logPath = join(dir, 'build.log')
  const logFile = createWriteStream(logPath)
  const started = performance.now()
  const step: Step = async (name, command, args, cwd) => {
    const at = performance.now()
    log(`${name} …`)
    logFile.write(`\n$ ${command} ${args.join(' ')}   (in ${cwd})\n`)
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(command, args, {
        cwd,
        env: { ...env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' },
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
        `control-plane build step "${name}" failed (exit ${code}); full log: ${logPath}\n${tail}`,
      )
    }
    log(`${name}: done in ${((performance.now() - at) / 1000).toFixed(0)} s`)
  }
  log(`building Kubernetes ${kubernetesVersion} and etcd ${etcdVersion} with ${go} into ${dir}`)
  log('a first build takes 20–30 minutes on 2 cores; later runs reuse it (see CONTRIBUTING.md)')
  const moduleDir = await moduleFor(kubernetesVersion, log, step)
  try {
    await step('go mod download', 'go', ['mod', 'download'], moduleDir)
    const minor = /^v1\.(\d+)\./.exec(kubernetesVersion)?.[1] ?? ''
    // The version kube-apiserver --version reports (k8s.io/component-base/version, as hack/lib/version.sh sets it).
    const versionFlags = [
      `-X k8s.io/component-base/version.gitVersion=${kubernetesVersion}`,
      '-X k8s.io/component-base/version.gitMajor=1',
      `-X k8s.io/component-base/version.gitMinor=${minor}`,
      '-X k8s.io/component-base/version.gitTreeState=clean',
    ].join(' ')
    for (const { name, pkg } of COMPONENTS) {
      await step(
        `go build ${name}`,
        'go',
        ['build', '-ldflags', `-s -w ${versionFlags}`, '-o', join(dir, 'bin', name), pkg],
        moduleDir,
      )
    }
  } finally {
    if (moduleDir !== MODULE_DIR) rmSync(moduleDir, { recursive: true, force: true })
  }
  await new Promise((resolve) => logFile.end(resolve))
  writeFileSync(marker(dir), `${new Date().toISOString()}\n`)
  log(`built in ${((performance.now() - started) / 60_000).toFixed(1)} min`)
  return found(dir)
}

/** A finished build for `key` made by any Go version (the newest directory name wins), if one exists. */
function existingBuild(
  root: string,
  key: string,
  marker: (dir: string) => string,
): string | undefined {
  if (!existsSync(root)) return undefined
  return readdirSync(root)
    .filter((name) => name.startsWith(`${key}_`) && existsSync(marker(join(root, name))))
    .sort()
    .map((name) => join(root, name))
    .at(-1)
}

if (import.meta.main) {
  try {
    const built = await ensureControlPlaneBinaries()
    const { stdout } = await run(built.path('kube-apiserver'), ['--version'])
    process.stdout.write(`${stdout.trim()} (etcd ${built.etcdVersion}) in ${built.dir}/bin\n`)
  } catch (error) {
    process.stderr.write(`cluster:build: ${(error as Error).message}\n`)
    if (error instanceof NoGoToolchain && process.env['CI'] !== 'true')
      process.stderr.write(
        'cluster:build: the control-plane tests will be skipped (in CI, CI=true, this fails)\n',
      )
    else process.exitCode = error instanceof NoGoToolchain ? 3 : 1
  }
}
