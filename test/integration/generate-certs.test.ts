/**
 * Runs generate-certs.sh for real (openssl, and kubectl only offline: --dry-run=client, patch --local) and checks
 * the certificates with Node's X509Certificate: the chain, the exact SAN the API server checks, serverAuth, and the
 * caBundle in every webhook. A fake kubectl (real kubectl underneath, state in files) covers the cluster path.
 */

import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { runCerts } from '../../cli/certs/certs.ts'
import { parseYamlDocuments, stringifyYamlDocuments } from '../../function/yaml.ts'
import { startFakeCertsApi } from '../support/fake-certs-api.ts'

const root = join(import.meta.dirname, '..', '..')
const script = join(root, 'generate-certs.sh')
const run = promisify(execFile)
const work = mkdtempSync(join(tmpdir(), 'irsa-certs-'))
after(() => rmSync(work, { recursive: true, force: true }))

function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const missing = ['bash', 'openssl', 'kubectl'].filter((tool) => !onPath(tool))
const skip = missing.length > 0 ? `needs ${missing.join(', ')} on PATH` : false

/** Reads a value from parsed YAML by a dotted path (`webhooks.0.clientConfig.caBundle`). */
function get(value: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], value)
}
const text = (value: unknown, path: string): string => {
  const found = get(value, path)
  assert.equal(typeof found, 'string', `${path} is a string`)
  return found as string
}
const readYaml = (path: string): unknown[] => parseYamlDocuments(readFileSync(path, 'utf8'))
const fromBase64 = (value: string): string => Buffer.from(value, 'base64').toString('utf8')
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'

/** Two webhooks, so "every webhook gets the caBundle" is really exercised. */
function twoWebhookFile(source: string, target: string): string {
  const [mwc] = readYaml(join(root, source))
  const hooks = get(mwc, 'webhooks') as Record<string, unknown>[]
  hooks.push({ ...hooks[0], name: 'second.irsa.vultr.com' })
  writeFileSync(target, stringifyYamlDocuments([mwc]))
  return target
}

async function certs(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = await run('bash', [script, ...args], { cwd: work, env, timeout: 60_000 })
  return { stdout: result.stdout, stderr: result.stderr }
}

function caBundles(mwcPath: string): string[] {
  const [mwc] = readYaml(mwcPath)
  const hooks = get(mwc, 'webhooks') as unknown[]
  return hooks.map((hook) => fromBase64(text(hook, 'clientConfig.caBundle')))
}

function checkLeaf(dir: string, host: string): void {
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')))
  const leaf = new X509Certificate(readFileSync(join(dir, 'tls.crt')))
  assert.equal(ca.ca, true, 'the CA is a CA')
  assert.equal(leaf.ca, false, 'the leaf is not a CA')
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'the leaf is signed by the CA')
  assert.equal(leaf.subjectAltName, `DNS:${host}, DNS:${host}.cluster.local`)
  assert.equal(leaf.checkHost(host), host)
  assert.deepEqual(leaf.keyUsage, [EKU_SERVER_AUTH])
  execFileSync(
    'openssl',
    [
      'verify',
      '-CAfile',
      join(dir, 'ca.crt'),
      '-purpose',
      'sslserver',
      '-verify_hostname',
      host,
      join(dir, 'tls.crt'),
    ],
    { stdio: 'ignore', timeout: 30_000 },
  )
}

function checkSecret(dir: string, name: string): void {
  const [secret] = readYaml(join(dir, 'secret.yaml'))
  assert.equal(get(secret, 'kind'), 'Secret')
  assert.equal(get(secret, 'type'), 'kubernetes.io/tls')
  assert.equal(get(secret, 'metadata.name'), name)
  assert.equal(get(secret, 'metadata.namespace'), 'irsa-system')
  const data = get(secret, 'data') as Record<string, string>
  assert.equal(fromBase64(data['tls.crt'] ?? ''), readFileSync(join(dir, 'tls.crt'), 'utf8'))
  assert.equal(fromBase64(data['tls.key'] ?? ''), readFileSync(join(dir, 'tls.key'), 'utf8'))
}

/** The names the certificate must match, read from the manifests themselves (not re-typed). */
function fromManifests() {
  const [service] = readYaml(join(root, 'deploy/base/service.yaml'))
  const deployment = readYaml(join(root, 'deploy/base/deployment.yaml'))[0]
  const mapping = readYaml(join(root, 'knative/base/domainmapping.yaml')).find(
    (doc) => get(doc, 'kind') === 'DomainMapping',
  )
  return [
    {
      mode: 'classic',
      host: `${text(service, 'metadata.name')}.${text(service, 'metadata.namespace')}.svc`,
      secret: text(deployment, 'spec.template.spec.volumes.0.secret.secretName'),
      mwc: 'deploy/base/webhook.yaml',
    },
    {
      mode: 'knative',
      host: text(mapping, 'metadata.name'),
      secret: text(mapping, 'spec.tls.secretName'),
      mwc: 'knative/base/webhook.yaml',
    },
  ] as const
}
const modes = fromManifests()

describe('generate-certs.sh --dry-run', { skip }, () => {
  for (const { mode, host, secret, mwc } of modes) {
    test(`${mode} mode signs a serverAuth leaf for exactly ${host}, writes the Secret and patches every webhook`, async () => {
      const out = join(work, `dry-${mode}`)
      const file = twoWebhookFile(mwc, join(work, `${mode}-mwc.yaml`))
      const { stdout } = await certs([
        '--mode',
        mode,
        '--dry-run',
        '--out',
        out,
        '--webhook-file',
        file,
      ])
      checkLeaf(out, host)
      checkSecret(out, secret)
      const ca = readFileSync(join(out, 'ca.crt'), 'utf8')
      assert.deepEqual(caBundles(join(out, 'webhook.yaml')), [ca, ca])
      assert.match(stdout, new RegExp(`name: ${secret}`), 'the Secret is printed')
      assert.match(stdout, /caBundle: /, 'the patched webhook configuration is printed')
    })
  }

  test('a second run reuses the CA (same caBundle) and issues a new leaf', async () => {
    const out = join(work, 'twice')
    const args = ['--mode', 'classic', '--dry-run', '--out', out]
    await certs(args)
    const first = {
      bundle: caBundles(join(out, 'webhook.yaml')),
      leaf: readFileSync(join(out, 'tls.crt'), 'utf8'),
    }
    const { stderr } = await certs(args)
    assert.match(stderr, /reusing the CA/)
    assert.deepEqual(caBundles(join(out, 'webhook.yaml')), first.bundle)
    assert.notEqual(readFileSync(join(out, 'tls.crt'), 'utf8'), first.leaf)
    checkLeaf(out, 'irsa-webhook.irsa-system.svc')
  })

  test('--rotate-ca makes a new CA, trusts old and new for that run, then only the new one', async () => {
    const out = join(work, 'rotate')
    const args = ['--mode', 'knative', '--dry-run', '--out', out]
    await certs(args)
    const oldCa = readFileSync(join(out, 'ca.crt'), 'utf8')
    await certs([...args, '--rotate-ca'])
    const newCa = readFileSync(join(out, 'ca.crt'), 'utf8')
    assert.notEqual(newCa, oldCa)
    assert.deepEqual(caBundles(join(out, 'webhook.yaml')), [newCa + oldCa])
    checkLeaf(out, 'irsa-webhook.kourier-system.svc')
    await certs(args)
    assert.deepEqual(caBundles(join(out, 'webhook.yaml')), [newCa])
  })

  test('--gateway-namespace moves the Knative SAN to the Operator install gateway', async () => {
    const out = join(work, 'operator')
    await certs([
      '--mode',
      'knative',
      '--gateway-namespace',
      'knative-serving',
      '--dry-run',
      '--out',
      out,
    ])
    checkLeaf(out, 'irsa-webhook.knative-serving.svc')
  })

  test('a bad mode is refused with the usage text', async () => {
    await assert.rejects(certs(['--mode', 'serverless', '--dry-run']), (error: unknown) => {
      assert.match(String(get(error, 'stderr')), /--mode must be classic or knative/)
      return true
    })
  })
})

/** kubectl for the cluster path: state lives in files, and the real kubectl does every offline step. */
const FAKE_KUBECTL = `#!/usr/bin/env bash
set -euo pipefail
printf '%s\\n' "$*" >>"$FAKE_STATE/calls.log"
args=("$@")
[[ $1 == -n ]] && shift 2
case "$1 \${2:-}" in
  'get namespace') exit 0 ;;
  'get secret')
    f=$FAKE_STATE/secret-$3.yaml
    [[ -f $f ]] || { echo 'Error from server (NotFound)' >&2; exit 1; }
    shift 3; exec "$REAL_KUBECTL" patch --local -f "$f" --type=merge -p '{}' "$@" ;;
  'apply -f')
    name=$("$REAL_KUBECTL" patch --local -f "$3" --type=merge -p '{}' -o 'jsonpath={.metadata.name}')
    cp "$3" "$FAKE_STATE/secret-$name.yaml"; echo "secret/$name configured" ;;
  'get mutatingwebhookconfiguration')
    shift 3; [[ $# -eq 0 ]] && set -- -o name
    exec "$REAL_KUBECTL" patch --local -f "$FAKE_STATE/mwc.yaml" --type=merge -p '{}' "$@" ;;
  'patch mutatingwebhookconfiguration')
    shift 3; "$REAL_KUBECTL" patch --local -f "$FAKE_STATE/mwc.yaml" "$@" -o yaml >"$FAKE_STATE/mwc.next"
    mv "$FAKE_STATE/mwc.next" "$FAKE_STATE/mwc.yaml"; echo patched ;;
  *) exec "$REAL_KUBECTL" "\${args[@]}" ;;
esac
`

describe('generate-certs.sh against a cluster (fake kubectl)', { skip }, () => {
  test('applies both Secrets, patches every webhook, and reuses the CA from the cluster on the next run', async () => {
    const state = mkdtempSync(join(work, 'cluster-'))
    const kubectl = join(state, 'kubectl')
    writeFileSync(kubectl, FAKE_KUBECTL)
    chmodSync(kubectl, 0o755)
    twoWebhookFile('deploy/base/webhook.yaml', join(state, 'mwc.yaml'))
    const realKubectl = execFileSync('sh', ['-c', 'command -v kubectl'], {
      encoding: 'utf8',
    }).trim()
    const env = { ...process.env, KUBECTL: kubectl, FAKE_STATE: state, REAL_KUBECTL: realKubectl }
    await certs(['--mode', 'classic'], env)
    const [tls] = readYaml(join(state, 'secret-irsa-webhook-certs.yaml'))
    const [caSecret] = readYaml(join(state, 'secret-irsa-webhook-ca.yaml'))
    const ca = fromBase64((get(caSecret, 'data') as Record<string, string>)['ca.crt'] ?? '')
    assert.equal(get(tls, 'type'), 'kubernetes.io/tls')
    assert.deepEqual(caBundles(join(state, 'mwc.yaml')), [ca, ca])
    const { stderr } = await certs(['--mode', 'classic'], env)
    assert.match(stderr, /found the CA in Secret irsa-system\/irsa-webhook-ca/)
    assert.deepEqual(caBundles(join(state, 'mwc.yaml')), [ca, ca])
    const calls = readFileSync(join(state, 'calls.log'), 'utf8')
    assert.match(calls, /^patch mutatingwebhookconfiguration irsa-webhook --type=json/m)
  })
})

/**
 * Parity with `irsa-webhook certs` (the bundles' certificate Job): each tool takes what the other made as its own.
 * The script's objects (fake kubectl state) are loaded into the certs stand-in API and the command finds nothing to
 * do — same Secret names, types, keys and ownership label, same SANs, a caBundle of the CA on every webhook — and
 * the command's objects, given to the script, make it reuse that CA and leave caBundle as the command wrote it.
 */
describe('generate-certs.sh and irsa-webhook certs make the same objects', { skip }, () => {
  const MWC_PATH =
    '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/irsa-webhook'
  const SECRETS = '/api/v1/namespaces/irsa-system/secrets'
  const realKubectl = skip
    ? ''
    : execFileSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).trim()

  function fakeKubectl(mwcSource: string) {
    const state = mkdtempSync(join(work, 'parity-'))
    const kubectl = join(state, 'kubectl')
    writeFileSync(kubectl, FAKE_KUBECTL)
    chmodSync(kubectl, 0o755)
    twoWebhookFile(mwcSource, join(state, 'mwc.yaml'))
    const env = { ...process.env, KUBECTL: kubectl, FAKE_STATE: state, REAL_KUBECTL: realKubectl }
    return { state, env }
  }
  /** A Secret as the API server stores it: `type` defaults to Opaque (kubectl create secret generic omits it). */
  const stored = (doc: unknown) => ({ type: 'Opaque', ...(doc as Record<string, unknown>) })
  const shape = (doc: unknown) => ({
    name: get(doc, 'metadata.name'),
    type: get(doc, 'type') ?? 'Opaque',
    labels: get(doc, 'metadata.labels'),
    keys: Object.keys(get(doc, 'data') as object).sort(),
  })

  for (const { mode, host, secret, mwc } of modes) {
    test(`${mode}: the command finds nothing to do on what the script made, and the script reuses the command's CA`, async () => {
      const io = () => {
        const out = { stdout: '', stderr: '' }
        return {
          out,
          io: {
            out: (t: string) => {
              out.stdout += t
            },
            err: (t: string) => {
              out.stderr += t
            },
            readFile: () => '',
          },
        }
      }
      // Script first, then the command on its objects.
      const script = fakeKubectl(mwc)
      await certs(['--mode', mode], script.env)
      const scriptSecrets = [secret, 'irsa-webhook-ca'].map(
        (name) => readYaml(join(script.state, `secret-${name}.yaml`))[0],
      )
      const api = await startFakeCertsApi()
      try {
        api.put(MWC_PATH, readYaml(join(script.state, 'mwc.yaml'))[0] as Record<string, unknown>)
        for (const doc of scriptSecrets)
          api.put(`${SECRETS}/${get(doc, 'metadata.name')}`, stored(doc))
        const first = io()
        assert.equal(
          await runCerts(['--kubeconfig', api.kubeconfigPath], first.io),
          0,
          first.out.stderr,
        )
        assert.match(
          first.out.stdout,
          new RegExp(`certificate for ${host.replaceAll('.', '\\.')}, `),
        )
        assert.match(first.out.stdout, /\nnothing to do\n$/)
        assert.deepEqual(api.writes, [], "the script's objects are the command's own")
      } finally {
        await api.close()
      }

      // Command first, then the script on its objects.
      const api2 = await startFakeCertsApi()
      try {
        api2.put(MWC_PATH, readYaml(join(root, mwc))[0] as Record<string, unknown>)
        const hooks = get(api2.objects.get(MWC_PATH), 'webhooks') as Record<string, unknown>[]
        hooks.push({ ...structuredClone(hooks[0]), name: 'second.irsa.vultr.com' })
        const made = io()
        assert.equal(
          await runCerts(['--kubeconfig', api2.kubeconfigPath], made.io),
          0,
          made.out.stderr,
        )
        const commandSecrets = [secret, 'irsa-webhook-ca'].map((name) =>
          api2.objects.get(`${SECRETS}/${name}`),
        )
        assert.deepEqual(
          commandSecrets.map(shape),
          scriptSecrets.map(shape),
          'same names, types, labels and keys',
        )
        const commandCa = fromBase64(
          (get(commandSecrets[1], 'data') as Record<string, string>)['ca.crt'] ?? '',
        )
        const target = fakeKubectl(mwc)
        writeFileSync(
          join(target.state, 'mwc.yaml'),
          stringifyYamlDocuments([api2.objects.get(MWC_PATH)]),
        )
        for (const doc of commandSecrets)
          writeFileSync(
            join(target.state, `secret-${get(doc, 'metadata.name')}.yaml`),
            stringifyYamlDocuments([doc]),
          )
        assert.deepEqual(caBundles(join(target.state, 'mwc.yaml')), [commandCa, commandCa])
        const { stderr } = await certs(['--mode', mode], target.env)
        assert.match(stderr, /found the CA in Secret irsa-system\/irsa-webhook-ca/)
        assert.deepEqual(caBundles(join(target.state, 'mwc.yaml')), [commandCa, commandCa])
      } finally {
        await api2.close()
      }
    })
  }
})
