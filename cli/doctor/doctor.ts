/**
 * `irsa-webhook doctor`: checks a live installation and prints each check with ✔/✘ and the fix.
 * @module
 */
import { parseArgs } from 'node:util'
import { EXIT, type Io, oneOf, splitRef } from '../shared/io.ts'
import { createKubeClient, getObject, loadKubeConfig } from '../shared/kube.ts'
import { checkExclusions, checkOidc, checkRbac } from './cluster.ts'
import type { Check, CheckResult, DoctorContext, Status } from './context.ts'
import {
  checkDomainClaim,
  checkDomainMapping,
  checkGatewayNamespace,
  checkKnativeService,
} from './knative.ts'
import { checkMissingIdentity } from './missing-identity.ts'
import { checkDryRunPod } from './pod.ts'
import { checkPolicyApi, checkPolicyObjects, servesPolicies } from './policy.ts'
import { checkCertificate } from './tls.ts'
import { checkEndpoints, checkService, checkSettings, loadWebhook } from './webhook.ts'

const DOCTOR_USAGE = `Usage: irsa-webhook doctor [options]

Checks a live installation through the kubeconfig and prints each check with ✔ (pass), ! (warning),
✘ (fail, with the fix) or - (skipped). Exit code 1 when any check fails.

Options:
      --mode classic|knative|policy  installation mode (default: policy when there is no MutatingWebhookConfiguration
                                  but a MutatingAdmissionPolicy of that name; knative when the webhook's Service is
                                  outside --namespace, i.e. the gateway alias; else classic)
  -n, --namespace NS              the webhook's namespace (default: irsa-system)
  -s, --service-account NS/NAME   an annotated ServiceAccount: a dry-run pod with it must come back mutated
      --webhook-service-account NS/NAME  the webhook's own ServiceAccount (default: <namespace>/irsa-webhook)
      --configuration NAME        the MutatingWebhookConfiguration, or in policy mode the MutatingAdmissionPolicy
                                  (NAME-deny and NAME-warnings are its ValidatingAdmissionPolicies; default: irsa-webhook)
      --tls-secret NAME           the Secret with the serving certificate (default: irsa-webhook-certs, or
                                  the DomainMapping's tls.secretName)
      --kubeconfig PATH           kubeconfig (default: $KUBECONFIG, ~/.kube/config)`

const MODES = ['classic', 'knative', 'policy'] as const
const SYMBOL: Record<Status, string> = { pass: '✔', warn: '!', fail: '✘', skip: '-' }

const COMMON: readonly Check[] = [checkSettings, checkService, checkEndpoints]
const KNATIVE: readonly Check[] = [checkKnativeService, checkDomainMapping, checkDomainClaim]
const LATER: readonly Check[] = [
  checkCertificate,
  checkRbac,
  checkExclusions,
  checkDryRunPod,
  checkOidc,
  checkMissingIdentity,
]

function parseDoctorArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string' },
      namespace: { type: 'string', short: 'n', default: 'irsa-system' },
      'service-account': { type: 'string', short: 's' },
      'webhook-service-account': { type: 'string' },
      configuration: { type: 'string', default: 'irsa-webhook' },
      'tls-secret': { type: 'string' },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const mode = values.mode === undefined ? undefined : oneOf('--mode', values.mode, MODES)
  return { ...values, mode }
}

/** Formats one result: the symbol line, and the fix indented below it. */
export function formatResult(result: CheckResult): string {
  const line = `${SYMBOL[result.status]} ${result.name} — ${result.detail}\n`
  return result.fix !== undefined && result.status !== 'pass'
    ? `${line}    fix: ${result.fix}\n`
    : line
}

/** Policy mode: the admission policies instead of a webhook (docs/policy.md). */
async function runPolicyDoctor(
  client: ReturnType<typeof createKubeClient>,
  values: ReturnType<typeof parseDoctorArgs>,
  io: Io,
): Promise<CheckResult[]> {
  io.out(`irsa-webhook doctor: ${client.server}, mode policy\n`)
  const probeRef = values['service-account']
  const context = {
    client,
    policyName: values.configuration,
    probe: probeRef === undefined ? undefined : splitRef(probeRef, 'default'),
  }
  const results: CheckResult[] = []
  const api = await checkPolicyApi(context)
  for (const result of [api, ...(api.status === 'pass' ? await checkPolicyObjects(context) : [])]) {
    results.push(result)
    io.out(formatResult(result))
  }
  for (const check of [checkDryRunPod, checkOidc] as const) {
    const result = await check(context)
    results.push(result)
    io.out(formatResult(result))
  }
  return results
}

/** No webhook configuration but a MutatingAdmissionPolicy of that name: a policy install. */
async function isPolicyInstall(
  client: ReturnType<typeof createKubeClient>,
  name: string,
): Promise<boolean> {
  if (!(await servesPolicies(client))) return false
  const found = await getObject(
    { client },
    `/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies/${encodeURIComponent(name)}`,
  )
  return 'found' in found
}

async function buildContext(
  values: ReturnType<typeof parseDoctorArgs>,
  client: ReturnType<typeof createKubeClient>,
) {
  const namespace = values.namespace
  const identity = splitRef(
    values['webhook-service-account'] ?? `${namespace}/irsa-webhook`,
    namespace,
  )
  const probeRef = values['service-account']
  const base = {
    client,
    namespace,
    configurationName: values.configuration,
    identity,
    probe: probeRef === undefined ? undefined : splitRef(probeRef, 'default'),
    tlsSecret: values['tls-secret'],
    mode: values.mode === 'knative' ? ('knative' as const) : ('classic' as const),
  }
  const { webhook, result } = await loadWebhook(base)
  const serviceNamespace = webhook?.clientConfig?.service?.namespace
  const mode =
    values.mode === 'classic' || values.mode === 'knative'
      ? values.mode
      : serviceNamespace !== undefined && serviceNamespace !== namespace
        ? 'knative'
        : 'classic'
  const context: DoctorContext = { ...base, mode, webhook }
  return { context, first: result }
}

/** Runs `doctor`; returns the exit code. */
export async function runDoctor(argv: string[], io: Io): Promise<number> {
  const values = parseDoctorArgs(argv)
  if (values.help) {
    io.out(`${DOCTOR_USAGE}\n`)
    return EXIT.ok
  }
  const client = createKubeClient(loadKubeConfig(values.kubeconfig))
  if (
    values.mode === 'policy' ||
    (values.mode === undefined && (await isPolicyInstall(client, values.configuration)))
  ) {
    return exitFor(summarise(await runPolicyDoctor(client, values, io), io))
  }
  const { context, first } = await buildContext(values, client)
  io.out(
    `irsa-webhook doctor: ${context.client.server}, mode ${context.mode}, namespace ${context.namespace}\n`,
  )
  const results: CheckResult[] = [first]
  io.out(formatResult(first))
  const knative = context.mode === 'knative'
  // In Knative mode the gateway namespace comes first: without it the alias Service checks cannot pass.
  const checks = [
    ...(knative ? [checkGatewayNamespace] : []),
    ...COMMON,
    ...(knative ? KNATIVE : []),
    ...LATER,
  ]
  for (const check of checks) {
    for (const result of [await check(context)].flat()) {
      results.push(result)
      io.out(formatResult(result))
    }
  }
  return exitFor(summarise(results, io))
}

/** Prints the summary line; returns the results. */
function summarise(results: readonly CheckResult[], io: Io): readonly CheckResult[] {
  const count = (status: Status) => results.filter((r) => r.status === status).length
  io.out(
    `\n${results.length} checks: ${count('pass')} passed, ${count('warn')} ${count('warn') === 1 ? 'warning' : 'warnings'}, ${count('fail')} failed, ${count('skip')} skipped\n`,
  )
  return results
}

const exitFor = (results: readonly CheckResult[]) =>
  results.some((r) => r.status === 'fail') ? EXIT.failed : EXIT.ok
