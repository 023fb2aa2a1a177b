/**
 * The bench's kube-apiserver side: the fake (test/bench/fake-sa-api.ts, a child on the load generator's CPU)
 * serving HTTPS with a throwaway CA, a service-account directory as a pod sees it (`token`, `ca.crt`), and a
 * kubeconfig for the same API (client-node path, informational).
 *
 * Servers reach it the way a pod reaches a real cluster: `KUBERNETES_SERVICE_HOST=127.0.0.1`,
 * `KUBERNETES_SERVICE_PORT=<port>`, `KUBE_SERVICEACCOUNT_DIR=<dir>` (default in a pod:
 * /var/run/secrets/kubernetes.io/serviceaccount), no `KUBECONFIG`.
 * @module
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:https'
import { join } from 'node:path'
import { createTestCertificates } from '../support/tls.ts'
import { LOAD_CPU, spawnNode } from './child.ts'
import { BENCH_TOKEN } from './fake-sa-api.ts'

export interface KubeApi {
  readonly port: number
  /** Holds `token` and `ca.crt`. */
  readonly serviceAccountDir: string
  readonly kubeconfig: string
  /** How many ServiceAccount GETs the fake has served so far. */
  gets(): Promise<number>
  close(): Promise<void>
}

function kubeconfig(server: string, caPath: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `  - name: bench\n    cluster:\n      server: ${server}\n      certificate-authority: ${caPath}`,
    'users:',
    `  - name: bench\n    user:\n      token: ${BENCH_TOKEN}`,
    'contexts:',
    '  - name: bench\n    context:\n      cluster: bench\n      user: bench',
    'current-context: bench',
    '',
  ].join('\n')
}

function httpsJson(url: string, ca: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca, agent: false, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolve(JSON.parse(text)))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** Starts the fake kube-apiserver over HTTPS (IP SAN 127.0.0.1) and writes its SA dir and kubeconfig. */
export async function startKubeApi(): Promise<KubeApi> {
  const certs = createTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
  const fake = spawnNode(
    'test/bench/fake-sa-api.ts',
    { TLS_CERT_PATH: certs.certPath, TLS_KEY_PATH: certs.keyPath },
    LOAD_CPU,
  )
  const port = Number((await fake.listening())['port'])
  const server = `https://127.0.0.1:${port}`
  const serviceAccountDir = join(certs.dir, 'serviceaccount')
  mkdirSync(serviceAccountDir)
  writeFileSync(join(serviceAccountDir, 'token'), BENCH_TOKEN)
  writeFileSync(join(serviceAccountDir, 'ca.crt'), certs.caPem)
  const kubeconfigPath = join(certs.dir, 'kubeconfig.yaml')
  writeFileSync(kubeconfigPath, kubeconfig(server, certs.caPath))
  return {
    port,
    serviceAccountDir,
    kubeconfig: kubeconfigPath,
    async gets() {
      return ((await httpsJson(`${server}/stats`, certs.caPem)) as { gets: number }).gets
    },
    async close() {
      await fake.stop()
      rmSync(certs.dir, { recursive: true, force: true })
    },
  }
}

/** The env a pod gets for its in-cluster API access (the production path of ours, and the floor's). */
export function inClusterEnv(api: KubeApi): Record<string, string> {
  return {
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(api.port),
    KUBE_SERVICEACCOUNT_DIR: api.serviceAccountDir,
  }
}
