/**
 * `npm run bench:policy`: what admission costs per pod, webhook against policy mode, on the real control plane of
 * the test suite (test/support/control-plane.ts), with 1, 100 and 1 000 ServiceAccounts in the pod's namespace
 * (the mutating policy is evaluated once per ServiceAccount of the namespace; the webhook GETs one).
 *
 * Rows per ServiceAccount count, the namespaces created fresh and filled with that many ServiceAccounts (each with a
 * role, the most the matchConditions can be asked to look at; the pod's own is one of them):
 *   none     a namespace no webhook and no policy serves (the API server's own cost, the floor)
 *   webhook  served by the webhook as it runs in production (test/support/cluster-webhook.ts; GET lookup mode)
 *   policy   served by the shipped policies (deploy/policy, bindings scoped to the namespace)
 *   policy-labelled  the same with deploy/components/policy-labelled-service-accounts: the bindings select only
 *            ServiceAccounts labelled api.vultr.com/irsa=true (here: the pod's own one only)
 * Two measures, interleaved per round (rotating order): `kubectl create --dry-run=server` wall time (what a user
 * waits; kubectl's own start-up included), and one dry-run POST over a kept-alive HTTPS connection (the server side
 * only). Medians and 90th percentiles over the rounds; every pod's answer is checked (mutated or not) before timing.
 *
 * Then the race the issue asks about: a ServiceAccount and a pod of it POSTed back to back on one connection (the
 * pod sent the moment the ServiceAccount's 201 arrives), `--race N` times; the count of pods admitted without the
 * identity is printed (the API server's informer cache had not seen the ServiceAccount yet).
 *
 * Options: --rounds N (default 20), --counts 1,100,1000, --race N (default 200).
 * @module
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { parseArgs } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { ANNOTATIONS, ENV, LABELS } from '../../function/names.ts'
import {
  asList,
  namesOf,
  POLICY_SCOPE_LABEL,
  plainPod,
  scopedPolicy,
  TEST_ROLE,
  untilParamsSeen,
} from '../support/cluster-policy.ts'
import { startClusterWebhook } from '../support/cluster-webhook.ts'
import { type ControlPlane, controlPlane, usable } from '../support/control-plane.ts'
import { render, renderWith } from '../support/manifests.ts'
import { machineLines, median } from './report.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    counts: { type: 'string', default: '1,100,1000' },
    race: { type: 'string', default: '200' },
  },
})
const ROUNDS = Number(values.rounds)
const COUNTS = values.counts.split(',').map(Number)
const RACE = Number(values.race)

type Mode = 'none' | 'webhook' | 'policy' | 'policy-labelled'
const MODES: readonly Mode[] = ['none', 'webhook', 'policy', 'policy-labelled']

/** The admin client of the kubeconfig, for raw HTTPS (keep-alive, one connection). */
function adminClient(cp: ControlPlane) {
  // biome-ignore lint/suspicious/noExplicitAny: kubeconfig YAML
  const config = parseYaml(readFileSync(cp.kubeconfig, 'utf8')) as any
  const user = config.users[0].user
  const read = (key: string) =>
    user[key] !== undefined
      ? readFileSync(user[key])
      : Buffer.from(String(user[`${key}-data`] ?? ''), 'base64')
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 1,
    ca: readFileSync(cp.caFile),
    cert: read('client-certificate'),
    key: read('client-key'),
  })
  const url = new URL(cp.server)
  return (method: string, path: string, body: unknown) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const payload = JSON.stringify(body)
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method,
          path,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          },
        },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (chunk) => {
            text += chunk
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
        },
      )
      req.once('error', reject)
      req.end(payload)
    })
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN
}

async function fillNamespace(cp: ControlPlane, namespace: string, count: number) {
  const items = Array.from({ length: count }, (_, index) => ({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: `sa-${index}`,
      namespace,
      annotations: { [ANNOTATIONS.role]: TEST_ROLE },
      // The pod's own ServiceAccount (the last one) is labelled for the policy-labelled row.
      ...(index === count - 1 ? { labels: { [LABELS.optIn]: 'true' } } : {}),
    },
  }))
  for (let at = 0; at < items.length; at += 250)
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: items.slice(at, at + 250) }),
    })
}

type Post = ReturnType<typeof adminClient>
type Labels = Record<Mode, Record<string, string>>
const byMode = () =>
  Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>

/** Fresh namespaces with `count` ServiceAccounts each; checks each mode's answer once. */
async function prepare(cp: ControlPlane, post: Post, labels: Labels, count: number) {
  const namespaces = {} as Record<Mode, string>
  for (const mode of MODES) {
    namespaces[mode] = await cp.namespace(`bench-${mode}-${count}`, labels[mode])
    await fillNamespace(cp, namespaces[mode], count)
  }
  await untilParamsSeen(cp, namespaces.policy)
  await untilParamsSeen(cp, namespaces['policy-labelled'])
  // The pod's own ServiceAccount is the last one created (the policy sees every one before it).
  const own = `sa-${count - 1}`
  for (const mode of MODES) {
    const path = `/api/v1/namespaces/${namespaces[mode]}/pods?dryRun=All`
    const answer = await post('POST', path, plainPod('check', own))
    const mutated = answer.text.includes(ENV.roleArn)
    if (answer.status !== 201 || mutated !== (mode !== 'none'))
      throw new Error(`${mode} with ${count}: HTTP ${answer.status}, mutated ${mutated}`)
  }
  return { namespaces, own }
}

/** One round: each mode once (kubectl, then HTTPS), in a rotating order. */
async function round(
  cp: ControlPlane,
  post: Post,
  at: number,
  setup: Awaited<ReturnType<typeof prepare>>,
  kubectlMs: Record<Mode, number[]>,
  httpMs: Record<Mode, number[]>,
): Promise<void> {
  for (const mode of MODES.map((_, i) => MODES[(i + at) % MODES.length] as Mode)) {
    const namespace = setup.namespaces[mode]
    const pod = { ...plainPod(`p-${at}`, setup.own), metadata: { name: `p-${at}`, namespace } }
    let started = performance.now()
    const result = await cp.kubectl(['create', '--dry-run=server', '-o', 'name', '-f', '-'], {
      input: JSON.stringify(pod),
    })
    kubectlMs[mode].push(performance.now() - started)
    if (result.code !== 0) throw new Error(result.stderr)
    started = performance.now()
    const answer = await post('POST', `/api/v1/namespaces/${namespace}/pods?dryRun=All`, pod)
    httpMs[mode].push(performance.now() - started)
    if (answer.status !== 201) throw new Error(answer.text)
  }
}

/** The table rows for `count` ServiceAccounts per namespace. */
async function measure(cp: ControlPlane, post: Post, labels: Labels, count: number) {
  const setup = await prepare(cp, post, labels, count)
  const kubectlMs = byMode()
  const httpMs = byMode()
  for (let at = 0; at < ROUNDS; at++) await round(cp, post, at, setup, kubectlMs, httpMs)
  for (const mode of MODES)
    await cp.kubectl(['delete', 'namespace', setup.namespaces[mode], '--wait=false'])
  process.stderr.write(`bench:policy: ${count} ServiceAccounts done\n`)
  return MODES.map(
    (mode) =>
      `| ${count} | ${mode} | ${median(kubectlMs[mode]).toFixed(1)} | ${percentile(kubectlMs[mode], 0.9).toFixed(1)} | ${median(httpMs[mode]).toFixed(2)} | ${percentile(httpMs[mode], 0.9).toFixed(2)} |`,
  )
}

/** The race: a ServiceAccount, then at once a pod of it; returns how many pods missed the identity. */
async function race(cp: ControlPlane, post: Post, labels: Labels): Promise<number> {
  const namespace = await cp.namespace('bench-race', labels.policy)
  let missed = 0
  for (let i = 0; i < RACE; i++) {
    const sa = await post('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
      metadata: { name: `race-${i}`, annotations: { [ANNOTATIONS.role]: TEST_ROLE } },
    })
    if (sa.status !== 201) throw new Error(sa.text)
    const path = `/api/v1/namespaces/${namespace}/pods?dryRun=All`
    const pod = await post('POST', path, plainPod(`race-${i}`, `race-${i}`))
    if (pod.status !== 201) throw new Error(pod.text)
    if (!pod.text.includes(ENV.roleArn)) missed++
  }
  return missed
}

async function main(): Promise<void> {
  const cp = usable(await controlPlane())
  const post = adminClient(cp)
  const scope = 'bench'
  const policy = [
    ...scopedPolicy(render('deploy/policy'), scope),
    ...scopedPolicy(
      renderWith(
        'resources: [deploy/policy]\ncomponents: [deploy/components/policy-labelled-service-accounts]\n',
      ),
      `${scope}-labelled`,
    ),
  ]
  await cp.kubectlOk(['apply', '-f', '-'], { input: asList(policy) })
  const webhook = await startClusterWebhook(cp, { scope: 'bench-webhook' })
  const labels: Labels = {
    none: {},
    webhook: { ...webhook.namespaceLabels },
    policy: { [POLICY_SCOPE_LABEL]: scope },
    'policy-labelled': { [POLICY_SCOPE_LABEL]: `${scope}-labelled` },
  }
  try {
    const rows: string[] = []
    for (const count of COUNTS) rows.push(...(await measure(cp, post, labels, count)))
    const missed = await race(cp, post, labels)
    const out = [
      `npm run bench:policy -- --rounds ${ROUNDS} --counts ${COUNTS.join(',')} --race ${RACE}`,
      `kube-apiserver ${cp.version}, ${ROUNDS} rounds, milliseconds per pod (dry-run create):`,
      '',
      '| ServiceAccounts in the namespace | served by | kubectl median | kubectl p90 | HTTPS median | HTTPS p90 |',
      '| ---: | --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      `A ServiceAccount and a pod of it POSTed back to back: ${missed} of ${RACE} pods admitted without the identity.`,
      '',
      // The bench pins nothing: the control plane, the webhook and kubectl share the machine's cores.
      ...machineLines().filter((line) => !line.startsWith('pinning:')),
      'pinning: none (control plane, webhook and kubectl share the cores; the machine is shared with other jobs)',
    ]
    process.stdout.write(`${out.join('\n')}\n`)
  } finally {
    await webhook.close()
    await cp.kubectl(['delete', '--ignore-not-found', ...namesOf(policy)])
  }
}

await main()
process.exit(0)
