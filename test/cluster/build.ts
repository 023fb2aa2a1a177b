/**
 * Builds the real control plane of the test suite — `etcd`, `kube-apiserver`, `kube-controller-manager` — from the
 * Go module beside this file (test/cluster/go.mod pins k8s.io/kubernetes and go.etcd.io/etcd/server/v3), into a
 * cache outside the work tree keyed by the versions, and reuses it when present. Go is test infrastructure only.
 *
 *   npm run cluster:build                                  # build when missing; print the version and the path
 *   IRSA_KUBERNETES_VERSION=v1.36.3 npm run cluster:build  # another release (a module made from its own go.mod)
 *
 * Where: `$IRSA_CLUSTER_CACHE` (default `$XDG_CACHE_HOME/irsa-webhook`, else `~/.cache/irsa-webhook`), then
 * `control-plane/k8s-<version>_etcd-<version>_<go version>/bin`, with the build's log beside `bin/`. A build is used
 * only once its `complete` marker is written, so an interrupted build is redone, never half-used. The Go module and
 * build caches (`go env GOMODCACHE GOCACHE`) are what make a rebuild fast.
 *
 * Exit codes: 0 built or already there, or no Go toolchain outside CI (the control-plane tests then skip, saying
 * why); 1 a build step failed (the message names the step and its log); 3 no Go toolchain in CI (`CI=true`), where a
 * missing toolchain fails the run instead of skipping it.
 * @module
 */
import { execFile, spawn } from 'node:child_process'
import {
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
/** Thrown when a build step fails; the message names the step and the build log. */
export class BuildStepFailed extends Error {}

const run = promisify(execFile)

/** The version a go.mod requires for `module`. */
function required(goMod: string, module: string): string {
  const match = new RegExp(`^\\s*${module.replaceAll('.', '\\.')}\\s+(v\\S+)`, 'm').exec(goMod)
  if (match?.[1] === undefined) throw new Error(`go.mod does not require ${module}`)
  return match[1]
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env['IRSA_CLUSTER_CACHE'] ??
    join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'irsa-webhook')
  )
}

const goEnv = (env: NodeJS.ProcessEnv) => ({ ...env, GOTOOLCHAIN: 'local' })

async function goVersion(env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run('go', ['env', 'GOVERSION'], { env: goEnv(env) })
    return stdout.trim()
  } catch {
    throw new NoGoToolchain(
      'no Go toolchain: `go` is not on PATH. The control-plane tests build kube-apiserver, kube-controller-manager ' +
        'and etcd from their Go modules (test/cluster/go.mod); install Go 1.26 or newer and make sure the Go ' +
        'module proxy is reachable, then run `npm run cluster:build`.',
    )
  }
}

/** What to build: the versions, and the go.mod text to build them with (undefined: the committed module). */
interface Plan {
  readonly kubernetesVersion: string
  readonly etcdVersion: string
  readonly goMod?: string
}

/**
 * For the release test/cluster/go.mod pins: that module. For another (IRSA_KUBERNETES_VERSION): a go.mod written the
 * same way from that release's own go.mod — k8s.io/kubernetes at that version, the etcd server that release
 * requires, and each staging module it replaces, at the same release.
 */
async function planFor(env: NodeJS.ProcessEnv): Promise<Plan> {
  const pinned = readFileSync(join(MODULE_DIR, 'go.mod'), 'utf8')
  const version = env['IRSA_KUBERNETES_VERSION'] ?? required(pinned, 'k8s.io/kubernetes')
  if (version === required(pinned, 'k8s.io/kubernetes'))
    return {
      kubernetesVersion: version,
      etcdVersion: required(pinned, 'go.etcd.io/etcd/server/v3'),
    }
  if (!/^v1\.\d+\.\d+$/.test(version))
    throw new Error(
      `IRSA_KUBERNETES_VERSION must look like v1.37.2, got ${JSON.stringify(version)}`,
    )
  const { stdout } = await run('go', ['mod', 'download', '-json', `k8s.io/kubernetes@${version}`], {
    env: goEnv(env),
  })
  const theirs = readFileSync((JSON.parse(stdout) as { GoMod: string }).GoMod, 'utf8')
  const etcdVersion = required(theirs, 'go.etcd.io/etcd/server/v3')
  const staging = [...theirs.matchAll(/^\s*(k8s\.io\/[\w.-]+) => \.\/staging\//gm)].map(
    (match) => match[1],
  )
  const release = version.replace(/^v1\./, 'v0.')
  const goMod = [
    pinned.slice(0, pinned.indexOf('require (')),
    `require (\n\tgo.etcd.io/etcd/server/v3 ${etcdVersion}\n\tk8s.io/kubernetes ${version}\n)\n`,
    'replace (',
    ...staging.map((module) => `\t${module} => ${module} ${release}`),
    ')',
    '',
  ].join('\n')
  return { kubernetesVersion: version, etcdVersion, goMod }
}

/** A finished build for `key` made by any Go version (the last directory name wins), if there is one. */
function finishedBuild(root: string, key: string): string | undefined {
  if (!existsSync(root)) return undefined
  return readdirSync(root)
    .filter((name) => name.startsWith(`${key}_`) && existsSync(join(root, name, 'complete')))
    .sort()
    .map((name) => join(root, name))
    .at(-1)
}

type Step = (
  name: string,
  args: string[],
  cwd: string,
  extraEnv?: Record<string, string>,
) => Promise<void>

/** Runs `go` steps with their output appended to `logPath`; a failure names the step, the log and its tail. */
function stepper(env: NodeJS.ProcessEnv, logPath: string, log: (line: string) => void): Step {
  return async (name, args, cwd, extraEnv = {}) => {
    const at = performance.now()
    log(`${name} …`)
    writeFileSync(logPath, `\n$ go ${args.join(' ')}   (in ${cwd})\n`, { flag: 'a' })
    const out = createWriteStream(logPath, { flags: 'a' })
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('go', args, {
        cwd,
        env: { ...goEnv(env), GOFLAGS: '-mod=readonly', ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      child.stdout.pipe(out, { end: false })
      child.stderr.pipe(out, { end: false })
      child.once('error', reject)
      child.once('close', resolve)
    })
    await new Promise((resolve) => out.end(resolve))
    if (code !== 0) {
      const tail = readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
      throw new BuildStepFailed(
        `control-plane build step "${name}" failed (exit ${code}); its log: ${logPath}\n${tail}`,
      )
    }
    log(`${name}: done in ${((performance.now() - at) / 1000).toFixed(0)} s`)
  }
}

/**
 * The binaries for `IRSA_KUBERNETES_VERSION` (default: the version test/cluster/go.mod pins): from the cache, or
 * built now. Throws NoGoToolchain when Go is missing (and nothing is cached) and BuildStepFailed when a step fails.
 */
export async function ensureControlPlaneBinaries(
  options: { log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<ControlPlaneBinaries> {
  const env = options.env ?? process.env
  const log = options.log ?? ((line: string) => process.stderr.write(`cluster:build: ${line}\n`))
  const root = join(cacheRoot(env), 'control-plane')
  const found = (plan: Plan, dir: string): ControlPlaneBinaries => ({
    kubernetesVersion: plan.kubernetesVersion,
    etcdVersion: plan.etcdVersion,
    dir,
    path: (component) => join(dir, 'bin', component),
  })
  const keyOf = (plan: Plan) => `k8s-${plan.kubernetesVersion}_etcd-${plan.etcdVersion}`

  let go: string
  try {
    go = await goVersion(env)
  } catch (error) {
    // A finished build of the pinned release needs no Go at all.
    if (env['IRSA_KUBERNETES_VERSION'] === undefined) {
      const plan = await planFor(env)
      const dir = finishedBuild(root, keyOf(plan))
      if (dir !== undefined) return found(plan, dir)
    }
    throw error
  }
  const plan = await planFor(env)
  const dir = join(root, `${keyOf(plan)}_${go}`)
  if (existsSync(join(dir, 'complete'))) return found(plan, dir)

  rmSync(dir, { recursive: true, force: true })
  mkdirSync(join(dir, 'bin'), { recursive: true })
  const step = stepper(env, join(dir, 'build.log'), log)
  const started = performance.now()
  log(
    `building Kubernetes ${plan.kubernetesVersion} and etcd ${plan.etcdVersion} with ${go} into ${dir}`,
  )
  log(
    'a first build took 9.5 min on an idle 2-core machine, 27 min on a busy one (CONTRIBUTING.md); later runs reuse it',
  )
  let moduleDir = MODULE_DIR
  if (plan.goMod !== undefined) {
    moduleDir = mkdtempSync(join(tmpdir(), 'irsa-cluster-module-'))
    writeFileSync(join(moduleDir, 'go.mod'), plan.goMod)
  }
  try {
    if (plan.goMod !== undefined)
      await step(
        `go mod tidy (a module for ${plan.kubernetesVersion})`,
        ['mod', 'tidy'],
        moduleDir,
        {
          GOFLAGS: '-mod=mod',
        },
      )
    await step('go mod download', ['mod', 'download'], moduleDir)
    const minor = /^v1\.(\d+)\./.exec(plan.kubernetesVersion)?.[1] ?? ''
    // The version `kube-apiserver --version` reports (k8s.io/component-base/version, as hack/lib/version.sh sets it).
    const versionFlags = [
      `-X k8s.io/component-base/version.gitVersion=${plan.kubernetesVersion}`,
      '-X k8s.io/component-base/version.gitMajor=1',
      `-X k8s.io/component-base/version.gitMinor=${minor}`,
      '-X k8s.io/component-base/version.gitTreeState=clean',
    ].join(' ')
    for (const { name, pkg } of COMPONENTS)
      await step(
        `go build ${name}`,
        ['build', '-ldflags', `-s -w ${versionFlags}`, '-o', join(dir, 'bin', name), pkg],
        moduleDir,
      )
  } finally {
    if (moduleDir !== MODULE_DIR) rmSync(moduleDir, { recursive: true, force: true })
  }
  writeFileSync(join(dir, 'complete'), `${new Date().toISOString()}\n`)
  log(`built in ${((performance.now() - started) / 60_000).toFixed(1)} min`)
  return found(plan, dir)
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
