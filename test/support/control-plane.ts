/**
 * A real Kubernetes control plane for the test suite, as controller-runtime's envtest gives Go operators: etcd,
 * kube-apiserver and kube-controller-manager built from their Go modules (test/cluster/build.ts), started on free
 * loopback ports with a throwaway PKI, a service-account issuer and signing key, RBAC authorization, the aggregator
 * (front-proxy) flags and an admin kubeconfig.
 *
 * One control plane per test run: the node --test global setup (test/support/control-plane-setup.ts) starts it and
 * passes its description to every test file through `IRSA_CONTROL_PLANE`; a file run alone (without the global
 * setup) starts a private one. Each test works in a namespace of its own (`namespace()`).
 *
 * What runs and what does not: the controller-manager gives what a cluster does without nodes (namespace deletion,
 * `default` ServiceAccounts, garbage collection, PodDisruptionBudget status, Deployments → ReplicaSets → Pods). No
 * kubelet and no scheduler run, so pods stay `Pending` with no node, and nothing mounts a volume or runs a container.
 *
 * Every process runs in a process group of its own and is killed with its group when the run ends — normally, on a
 * failure, or on SIGINT/SIGTERM; a run killed outright (SIGKILL) leaves its directory behind, and the next start
 * finds it by its owner's pid and kills and removes what is left (`reapStaleRuns`).
 * @module
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  type ControlPlaneBinaries,
  ensureControlPlaneBinaries,
  NoGoToolchain,
} from '../cluster/build.ts'
import { freePort, poll } from './process.ts'
import { createCertificateAuthority, writeCertificate } from './tls.ts'

const execFileAsync = promisify(execFile)

/** The environment variable the global setup sets: the path of the running control plane's description. */
export const CONTROL_PLANE_ENV = 'IRSA_CONTROL_PLANE'
/** Set (to the reason) when the control-plane tests are skipped on this machine. */
export const CONTROL_PLANE_SKIP_ENV = 'IRSA_CONTROL_PLANE_SKIP'
const RUN_PREFIX = 'irsa-control-plane-'
/** How long the control plane may take to become ready before the run fails with its logs. */
const READY_MS = 120_000

/** What a test file needs to reach the control plane (serialisable: the global setup writes it as JSON). */
export interface ControlPlaneInfo {
  /** `kube-apiserver --version`, e.g. `v1.37.2`. */
  readonly version: string
  readonly server: string
  /** An admin kubeconfig (client certificate in `system:masters`). */
  readonly kubeconfig: string
  /** The cluster CA (it signed the API server's serving certificate). */
  readonly caFile: string
  /** The service-account issuer (`--service-account-issuer`). */
  readonly issuer: string
  /** The run's directory; `logs/` holds each component's log. */
  readonly dir: string
  readonly logDir: string
}

export interface Command {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface KubectlOptions {
  /** Standard input (e.g. a manifest for `apply -f -`). */
  readonly input?: string
  /** Another kubeconfig than the admin one (e.g. serviceAccountKubeconfig). */
  readonly kubeconfig?: string
}

export interface ControlPlane extends ControlPlaneInfo {
  readonly skip: false
  /** Runs the machine's `kubectl` against the control plane; never throws on a non-zero exit. */
  kubectl(args: readonly string[], options?: KubectlOptions): Promise<Command>
  /** Like kubectl, but throws (with stderr) unless it exits 0; returns stdout. */
  kubectlOk(args: readonly string[], options?: KubectlOptions): Promise<string>
  /** Parsed JSON from `kubectl get … -o json` (throws unless it exits 0). */
  getJson<T = Record<string, unknown>>(args: readonly string[]): Promise<T>
  /** A fresh namespace named `<prefix>-<random>`, ready for pods (its `default` ServiceAccount exists). */
  namespace(prefix: string, labels?: Readonly<Record<string, string>>): Promise<string>
  /** A kubeconfig authenticating as user `name` in `groups` with a client certificate from the cluster CA. */
  userKubeconfig(name: string, groups?: readonly string[]): Promise<string>
  /** A kubeconfig authenticating as `system:serviceaccount:<namespace>:<name>` with a TokenRequest token. */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>
  /**
   * What a kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount for that ServiceAccount: a directory with
   * `token` (TokenRequest, audience the API server), `ca.crt` and `namespace`.
   */
  serviceAccountMount(namespace: string, name: string): Promise<string>
}

export interface Skipped {
  readonly skip: string
}

/** Narrows to the control plane inside a `describe(…, { skip: cluster.skip })` body. */
export function usable(cluster: ControlPlane | Skipped): ControlPlane {
  if (cluster.skip !== false) throw new Error(`the control plane is not available: ${cluster.skip}`)
  return cluster
}

/** The run-wide control plane, or why it is skipped here. A file run alone starts a private one. */
export async function controlPlane(): Promise<ControlPlane | Skipped> {
  const skip = process.env[CONTROL_PLANE_SKIP_ENV]
  if (skip !== undefined) return { skip }
  const described = process.env[CONTROL_PLANE_ENV]
  if (described !== undefined)
    return clientFor(JSON.parse(readFileSync(described, 'utf8')) as ControlPlaneInfo)
  const started = await startOrSkip()
  if ('skip' in started) return started
  process.once('exit', () => started.killNow())
  return clientFor(started.info)
}

/**
 * Builds (when needed) and starts the control plane, or returns why it is skipped: no Go outside CI. In CI
 * (`CI=true`) a missing toolchain is an error, never a skip.
 */
export async function startOrSkip(
  log: (line: string) => void = (line) => process.stderr.write(`control plane: ${line}\n`),
): Promise<RunningControlPlane | Skipped> {
  let binaries: ControlPlaneBinaries
  try {
    binaries = await ensureControlPlaneBinaries({ log })
  } catch (error) {
    if (error instanceof NoGoToolchain && process.env['CI'] !== 'true')
      return { skip: `${error.message} (skipped outside CI; with CI=true this fails the run)` }
    throw error
  }
  return startControlPlane(binaries, log)
}

export interface RunningControlPlane {
  readonly info: ControlPlaneInfo
  /** Stops every process (SIGTERM, then SIGKILL for what is left) and removes the run directory. */
  stop(): Promise<void>
  /** Synchronous last resort (process `exit` hooks): SIGKILL every process group and remove the directory. */
  killNow(): void
}

interface Started {
  readonly child: ChildProcess
  readonly name: string
  readonly log: string
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const killGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch {
    // already gone
  }
}

/**
 * Kills and removes what runs killed outright left behind: run directories whose owner process is gone. A process
 * group is killed only when its leader is still one of the run's own binaries (checked in /proc), never a reused pid.
 */
export function reapStaleRuns(root = tmpdir()): number {
  const stale = readdirSync(root)
    .filter((name) => name.startsWith(RUN_PREFIX))
    .map((name) => join(root, name))
    .filter((dir) => {
      const owner = Number.parseInt(readFileSyncOr(join(dir, 'owner.pid'), ''), 10)
      return !Number.isNaN(owner) && !alive(owner)
    })
  for (const dir of stale) {
    for (const [leader, binary] of processGroupsOf(dir)) {
      if (readFileSyncOr(`/proc/${leader}/cmdline`, '').startsWith(binary))
        killGroup(leader, 'SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return stale.length
}

/** The process groups a run recorded: leader pid and the binary it runs. */
function processGroupsOf(dir: string): [number, string][] {
  return readFileSyncOr(join(dir, 'pids'), '')
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([pid, binary]) => binary !== undefined && /^\d+$/.test(pid ?? ''))
    .map(([pid, binary]) => [Number(pid), binary as string])
}

function readFileSyncOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return fallback
  }
}

function writeKubeconfig(
  path: string,
  server: string,
  caFile: string,
  user: Record<string, string>,
): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'irsa-test', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: 'user', user }],
    contexts: [{ name: 'irsa-test', context: { cluster: 'irsa-test', user: 'user' } }],
    'current-context': 'irsa-test',
  }
  // JSON is YAML: kubectl and client-node read it as a kubeconfig.
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 })
}

/** The throwaway PKI: cluster CA, serving and client certificates, front-proxy CA, service-account key. */
function makePki(dir: string) {
  const pki = join(dir, 'pki')
  const frontProxy = join(pki, 'front-proxy')
  mkdirSync(frontProxy, { recursive: true })
  createCertificateAuthority(pki)
  const serving = writeCertificate(pki, {
    name: 'apiserver',
    dnsNames: [
      'localhost',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
    ],
    ipAddresses: ['127.0.0.1', '10.0.0.1'],
  })
  const admin = writeCertificate(pki, {
    name: 'admin',
    dnsNames: [],
    subject: '/O=system:masters/CN=irsa-test-admin',
    usage: 'client',
  })
  const controllerManager = writeCertificate(pki, {
    name: 'controller-manager',
    dnsNames: [],
    subject: '/CN=system:kube-controller-manager',
    usage: 'client',
  })
  createCertificateAuthority(frontProxy)
  const proxyClient = writeCertificate(frontProxy, {
    name: 'front-proxy-client',
    dnsNames: [],
    subject: '/CN=front-proxy-client',
    usage: 'client',
  })
  // The service-account signing key (RSA, as kubeadm makes it) and its public half for verification.
  const saKey = join(pki, 'sa.key')
  const saPub = join(pki, 'sa.pub')
  execFileSyncQuiet('openssl', ['genrsa', '-out', saKey, '2048'])
  execFileSyncQuiet('openssl', ['rsa', '-in', saKey, '-pubout', '-out', saPub])
  return {
    ca: join(pki, 'ca.crt'),
    serving,
    admin,
    controllerManager,
    frontProxyCa: join(frontProxy, 'ca.crt'),
    proxyClient,
    saKey,
    saPub,
  }
}

function execFileSyncQuiet(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** GET `path` on the API server with the admin client certificate: status and body. */
function adminGet(
  port: number,
  path: string,
  pki: ReturnType<typeof makePki>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        ca: readFileSync(pki.ca),
        cert: pki.admin.certPem,
        key: pki.admin.keyPem,
        timeout: 5_000,
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', (error) => resolve({ status: 0, body: error.message }))
    req.end()
  })
}

function tail(path: string, lines = 25): string {
  return readFileSyncOr(path, '(no log)').trimEnd().split('\n').slice(-lines).join('\n')
}

/** Starts etcd, kube-apiserver and kube-controller-manager and waits until they serve. */
export async function startControlPlane(
  binaries: ControlPlaneBinaries,
  log: (line: string) => void = () => {},
  readyTimeoutMs = READY_MS,
): Promise<RunningControlPlane> {
  const reaped = reapStaleRuns()
  if (reaped > 0) log(`removed ${reaped} control plane run(s) left behind by killed runs`)
  const dir = mkdtempSync(join(tmpdir(), RUN_PREFIX))
  writeFileSync(join(dir, 'owner.pid'), String(process.pid))
  const logDir = join(dir, 'logs')
  mkdirSync(logDir)
  const started: Started[] = []

  const launch = (name: string, binary: string, args: string[]): Started => {
    const logPath = join(logDir, `${name}.log`)
    const fd = openSync(logPath, 'a')
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd] })
    child.unref()
    const entry = { child, name, log: logPath }
    started.push(entry)
    if (child.pid !== undefined)
      writeFileSync(join(dir, 'pids'), `${child.pid} ${binary}\n`, { flag: 'a' })
    return entry
  }
  let stopped = false
  const killNow = () => {
    // Once only: a second call (an exit hook after stop) must not signal process groups whose ids were reused.
    if (stopped) return
    stopped = true
    for (const { child } of started) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL')
    if (process.env['IRSA_CLUSTER_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true })
  }
  const stop = async () => {
    for (const { child } of [...started].reverse())
      if (child.pid !== undefined && child.exitCode === null) killGroup(child.pid, 'SIGTERM')
    await Promise.all(
      started.map(({ child }) =>
        child.exitCode !== null || child.signalCode !== null
          ? undefined
          : new Promise((resolve) => {
              const timer = setTimeout(resolve, 3_000)
              child.once('exit', () => {
                clearTimeout(timer)
                resolve(undefined)
              })
            }),
      ),
    )
    killNow()
  }
  const exited = () =>
    started.find(({ child }) => child.exitCode !== null || child.signalCode !== null)
  const logsOf = () =>
    started.map(({ name, log: path }) => `--- ${name} (${path}):\n${tail(path)}`).join('\n')

  try {
    const pki = makePki(dir)
    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()]
    const server = `https://127.0.0.1:${apiPort}`
    launch('etcd', binaries.path('etcd'), [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // As envtest runs it: a test store needs no durability, and fsync dominates on slow disks.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ])
    launch('kube-apiserver', binaries.path('kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // A loopback address may not be published as the `kubernetes` Service's endpoint (as envtest does: none).
      '--endpoint-reconciler-type=none',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.serving.certPath}`,
      `--tls-private-key-file=${pki.serving.keyPath}`,
      `--client-ca-file=${pki.ca}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.0.0.0/24',
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      // The aggregator (front-proxy) flags, as kubeadm sets them.
      `--requestheader-client-ca-file=${pki.frontProxyCa}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${pki.proxyClient.certPath}`,
      `--proxy-client-key-file=${pki.proxyClient.keyPath}`,
      // A webhook (or aggregated API) behind a Service is reached through its ready endpoints, never its ClusterIP
      // (k8s.io/kubernetes cmd/kube-apiserver/app/server.go, buildServiceResolver). Without it the API server dials
      // the ClusterIP: with no kube-proxy here that address (10.0.0.0/24) leaves the machine — on a sandboxed host
      // it reached an egress proxy's TLS, and the failure depended on the host. With it, a Service with no ready
      // pod fails the same everywhere: `no endpoints available for service "<name>"` (apiserver pkg/util/proxy).
      '--enable-aggregator-routing=true',
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
    ])
    const kubeconfig = join(dir, 'admin.kubeconfig')
    writeKubeconfig(kubeconfig, server, pki.ca, {
      'client-certificate': pki.admin.certPath,
      'client-key': pki.admin.keyPath,
    })
    const controllerManagerKubeconfig = join(dir, 'controller-manager.kubeconfig')
    writeKubeconfig(controllerManagerKubeconfig, server, pki.ca, {
      'client-certificate': pki.controllerManager.certPath,
      'client-key': pki.controllerManager.keyPath,
    })
    await poll(
      async () => {
        const gone = exited()
        if (gone !== undefined) throw new Error(`${gone.name} exited (${gone.child.exitCode})`)
        const { status } = await adminGet(apiPort, '/readyz', pki)
        return status === 200 ? true : undefined
      },
      'kube-apiserver /readyz',
      readyTimeoutMs,
    )
    const kcmPort = await freePort()
    launch('kube-controller-manager', binaries.path('kube-controller-manager'), [
      `--kubeconfig=${controllerManagerKubeconfig}`,
      `--authentication-kubeconfig=${controllerManagerKubeconfig}`,
      `--authorization-kubeconfig=${controllerManagerKubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.ca}`,
      '--cluster-name=irsa-test',
      '--v=1',
    ])
    // The controller-manager is working once the ServiceAccount controller made `default/default`.
    await poll(
      async () => {
        const gone = exited()
        if (gone !== undefined) throw new Error(`${gone.name} exited (${gone.child.exitCode})`)
        const { status } = await adminGet(
          apiPort,
          '/api/v1/namespaces/default/serviceaccounts/default',
          pki,
        )
        return status === 200 ? true : undefined
      },
      'kube-controller-manager to create the default ServiceAccount',
      readyTimeoutMs,
    )
    const { stdout } = await execFileAsync(binaries.path('kube-apiserver'), ['--version'])
    const version = stdout.trim().replace(/^Kubernetes\s+/, '')
    const info: ControlPlaneInfo = {
      version,
      server,
      kubeconfig,
      caFile: pki.ca,
      issuer: server,
      dir,
      logDir,
    }
    writeFileSync(join(dir, 'control-plane.json'), JSON.stringify(info, null, 2))
    return { info, stop, killNow }
  } catch (error) {
    const message = `the control plane did not start: ${(error as Error).message}\n${logsOf()}`
    killNow()
    throw new Error(message)
  }
}

const randomSuffix = () => randomBytes(3).toString('hex')

/** The test-side client of a running control plane: kubectl, namespaces, ServiceAccount credentials. */
export function clientFor(info: ControlPlaneInfo): ControlPlane {
  const kubectl = (args: readonly string[], options: KubectlOptions = {}): Promise<Command> =>
    new Promise((resolve, reject) => {
      const child = execFile(
        'kubectl',
        [`--kubeconfig=${options.kubeconfig ?? info.kubeconfig}`, ...args],
        { timeout: 60_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, KUBECONFIG: '' } },
        (error, stdout, stderr) => {
          if (error !== null && typeof error.code !== 'number')
            reject(new Error(`kubectl ${args.join(' ')}: ${error.message}`))
          else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr })
        },
      )
      if (options.input !== undefined) child.stdin?.end(options.input)
      else child.stdin?.end()
    })
  const kubectlOk = async (args: readonly string[], options: KubectlOptions = {}) => {
    const result = await kubectl(args, options)
    if (result.code !== 0)
      throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
    return result.stdout
  }
  const credentials = join(info.dir, 'credentials')
  const token = async (namespace: string, name: string) =>
    (await kubectlOk(['create', 'token', name, '-n', namespace, '--duration=2h'])).trim()
  return {
    ...info,
    skip: false,
    kubectl,
    kubectlOk,
    async getJson<T>(args: readonly string[]) {
      return JSON.parse(await kubectlOk(['get', ...args, '-o', 'json'])) as T
    },
    async namespace(prefix, labels = {}) {
      const name = `${prefix}-${randomSuffix()}`
      const manifest = {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: { 'irsa-test': 'true', ...labels } },
      }
      await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(manifest) })
      // Pods need their ServiceAccount (the ServiceAccount admission plugin rejects a pod whose SA is missing),
      // and the controller-manager makes `default` a moment after the namespace.
      await poll(
        async () =>
          (await kubectl(['get', 'serviceaccount', 'default', '-n', name])).code === 0
            ? true
            : undefined,
        `the default ServiceAccount in ${name}`,
        30_000,
      )
      return name
    },
    async userKubeconfig(name, groups = []) {
      mkdirSync(credentials, { recursive: true })
      const stem = `user-${randomSuffix()}`
      // The cluster CA's key is in the run directory: any user the test needs, as an authenticating proxy would.
      const cert = writeCertificate(join(info.dir, 'pki'), {
        name: stem,
        dnsNames: [],
        subject: [...groups.map((g) => `/O=${g}`), `/CN=${name}`].join(''),
        usage: 'client',
      })
      const path = join(credentials, `${stem}.kubeconfig`)
      writeKubeconfig(path, info.server, info.caFile, {
        'client-certificate': cert.certPath,
        'client-key': cert.keyPath,
      })
      return path
    },
    async serviceAccountKubeconfig(namespace, name) {
      mkdirSync(credentials, { recursive: true })
      const path = join(credentials, `${namespace}.${name}.${randomSuffix()}.kubeconfig`)
      writeKubeconfig(path, info.server, info.caFile, { token: await token(namespace, name) })
      return path
    },
    async serviceAccountMount(namespace, name) {
      const dir = join(credentials, `${namespace}.${name}.${randomSuffix()}`)
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, 'token'), await token(namespace, name))
      writeFileSync(join(dir, 'ca.crt'), readFileSync(info.caFile))
      writeFileSync(join(dir, 'namespace'), namespace)
      return dir
    },
  }
}

/** True when a run directory of this module exists for `pid` (for tests of the harness itself). */
export function runDirectoriesOf(pid: number, root = tmpdir()): string[] {
  return readdirSync(root)
    .filter((name) => name.startsWith(RUN_PREFIX))
    .map((name) => join(root, name))
    .filter((dir) => existsSync(join(dir, 'owner.pid')))
    .filter((dir) => readFileSyncOr(join(dir, 'owner.pid'), '') === String(pid))
}
