/**
 * Generates policy mode (issue 16): the webhook's decision as Kubernetes admission policies, evaluated in the API
 * server itself (Kubernetes 1.36+, `admissionregistration.k8s.io/v1`), with no webhook process at all.
 *
 *   npm run policy:generate            writes deploy/policy/policy.yaml
 *   npm run policy:generate -- --check exits 1 when the committed file differs from what would be written
 *   TOKEN_AUDIENCE=sts.example DEFAULT_REGION=ewr npm run -s policy:generate -- --from-env > my-policy.yaml
 *                                      prints the policy for the webhook config in the environment (the same
 *                                      variables and checks as the webhook: TOKEN_AUDIENCE, TOKEN_EXPIRATION_SECONDS,
 *                                      STS_ENDPOINT, DEFAULT_REGION, INVALID_ROLE_POLICY)
 *
 * The objects:
 * - MutatingAdmissionPolicy `irsa-webhook` + binding: `paramKind` ServiceAccount, `paramRef.selector: {}` with no
 *   namespace, so the API server evaluates it once per ServiceAccount of the pod's namespace; the first
 *   matchCondition keeps only the pod's own ServiceAccount. One JSONPatch mutation adds exactly what
 *   `planPodMutation` (function/mutate-pod.ts) adds, in the same order.
 * - ValidatingAdmissionPolicy `irsa-webhook-deny` + binding (Deny): the invalid-role denial, with the webhook's message.
 * - ValidatingAdmissionPolicy `irsa-webhook-warnings` + binding (Warn): the webhook's warnings, one per validation.
 *
 * One source of truth: names, paths and defaults come from function/names.ts and the webhook's config defaults
 * (`reviewSettings(loadConfig(env))`); the patterns from function/identity.ts; every message and warning text is
 * produced by running the webhook's own decision code (`readIdentity`, `planPodMutation`, `reviewPod`) on marker
 * values and cutting the result at the markers, so a changed message in the webhook changes the policy. The logic
 * (which env var, mount or volume is added when) is restated in CEL; test/cluster/policy-differential.test.ts
 * proves it equal to the webhook's, pod for pod, on a real kube-apiserver. What CEL does differently is listed in
 * docs/policy.md ("What differs").
 *
 * Exit codes: 0 written (or up to date with --check); 1 out of date (--check) or writing failed; 2 bad command line
 * or an invalid setting (the webhook's own config error, naming the variable).
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import type { AdmissionRequest } from '../function/admission.ts'
import { MAX_WARNING } from '../function/admission.ts'
import { loadConfig, reviewSettings } from '../function/config.ts'
import {
  AUDIENCE,
  type Identity,
  QUOTE_LIMIT,
  REGION,
  ROLE_ARN,
  readIdentity,
  SECONDS,
  UUID,
} from '../function/identity.ts'
import type { Pod } from '../function/kube-objects.ts'
import { planPodMutation } from '../function/mutate-pod.ts'
import {
  ANNOTATIONS,
  DEFAULTS,
  ENV,
  LABELS,
  MAX_EXPIRATION_SECONDS,
  MIN_EXPIRATION_SECONDS,
  policyNames,
  TOKEN_VOLUME,
} from '../function/names.ts'
import { type ReviewSettings, reviewPod } from '../function/review-pod.ts'
import { parseYamlDocuments } from '../function/yaml.ts'

const ROOT = resolve(import.meta.dirname, '..')
/** The generated file, and the webhook configuration whose selectors it copies. */
export const POLICY_FILE = 'deploy/policy/policy.yaml'
const WEBHOOK_FILE = 'deploy/base/webhook.yaml'

export const POLICY_NAMES = policyNames()
/** The Warn policy has this many validations: warning k of the webhook's list is validation k's message; the last
 * one carries the rest, joined with "; " (a pod with more warnings than this gets them grouped, docs/policy.md). */
export const WARNING_SLOTS = 8

type Doc = Record<string, unknown>

export interface PolicyOptions {
  /** The webhook's settings the policy bakes in (defaults: the webhook's config defaults). */
  readonly settings?: ReviewSettings
  /** Added to every binding's matchResources (tests scope a policy to their own namespaces with it). */
  readonly namespaceSelector?: Doc
  /** Prefix of every object name (tests run several variants side by side). */
  readonly namePrefix?: string
  /** Test hook: an extra variable the mutation reads, to make a CEL runtime error on purpose. */
  readonly faultExpression?: string
}

// ---------------------------------------------------------------------------------------------------------------
// CEL text helpers

/** A CEL string literal (JSON string syntax is valid CEL). */
const lit = (value: string): string => JSON.stringify(value)

/** A JavaScript regex as an RE2 pattern literal for CEL `matches`; `X{m,n}` past RE2's 1000 limit is refused. */
function re2(regex: RegExp): string {
  const flags = regex.flags.replace('u', '')
  if (flags !== '' && flags !== 'i') throw new Error(`regex flags ${regex.flags} have no RE2 form`)
  for (const [, , max] of regex.source.matchAll(/\{(\d+),(\d+)\}/g)) {
    if (Number(max) > 1000) throw new Error(`${regex} repeats past RE2's limit of 1000`)
  }
  return lit(`${flags === 'i' ? '(?i)' : ''}${regex.source}`)
}

/**
 * `value matches regex` in CEL. A pattern of the form `^literal[class]{m,n}$` with n past RE2's repeat limit
 * becomes `^literal[class]+$` plus a length check, which accepts the same strings (the class is one code point).
 */
function celMatches(value: string, regex: RegExp): string {
  const long = /^\^([A-Za-z0-9:]*)(\[[^\]]+\])\{(\d+),(\d+)\}\$$/.exec(regex.source)
  if (long !== null && Number(long[4]) > 1000 && regex.flags === '') {
    const [, prefix = '', charClass = '', min = '0', max = '0'] = long
    const pattern = lit(`^${prefix}${charClass}+$`)
    const low = prefix.length + Number(min)
    const high = prefix.length + Number(max)
    return `(${value}.matches(${pattern}) && size(${value}) >= ${low} && size(${value}) <= ${high})`
  }
  return `${value}.matches(${re2(regex)})`
}

/** JSON string escapes for the characters JSON.stringify escapes (control characters, quote, backslash). */
function escapesVariable(): { name: string; expression: string } {
  const chars = [...Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)), '"', '\\']
  const entries = chars.map((char) => `${lit(char)}: ${lit(JSON.stringify(char).slice(1, -1))}`)
  return { name: 'escapes', expression: `{${entries.join(', ')}}` }
}

/** CEL for the webhook's quote(): cut to QUOTE_LIMIT characters, then JSON string escaping (variables.escapes). */
function celQuote(value: string): string {
  const cut = `(size(${value}) > ${QUOTE_LIMIT} ? ${value}.substring(0, ${QUOTE_LIMIT - 3}) + "..." : ${value})`
  return (
    `'"' + lists.range(size(${cut})).map(i, ${cut}.charAt(i))` +
    `.map(c, c in variables.escapes ? variables.escapes[c] : c).join() + '"'`
  )
}

/** CEL for admission.ts's shorten(): every warning cut to MAX_WARNING characters. */
const celShorten = (value: string): string =>
  `(size(${value}) > ${MAX_WARNING} ? ${value}.substring(0, ${MAX_WARNING - 3}) + "..." : ${value})`

/** Private-use markers: fed to the webhook's code in place of user values, then cut out of its messages. */
const MARK = {
  raw: '\uE000',
  namespace: '\uE001',
  name: '\uE002',
  container: '\uE003',
  volume: '\uE004',
  audience: '\uE005',
} as const

/**
 * Turns one of the webhook's messages into a CEL string expression: each marker (or a quoted user value, given as
 * its literal text) is replaced by the CEL expression for it; everything else stays literal text.
 */
function template(message: string, parts: Readonly<Record<string, string>>): string {
  const keys = Object.keys(parts).sort((a, b) => b.length - a.length)
  const pieces: string[] = []
  let rest = message
  while (rest !== '') {
    let best: { at: number; key: string } | undefined
    for (const key of keys) {
      const at = rest.indexOf(key)
      if (at >= 0 && (best === undefined || at < best.at)) best = { at, key }
    }
    if (best === undefined) {
      pieces.push(lit(rest))
      break
    }
    if (best.at > 0) pieces.push(lit(rest.slice(0, best.at)))
    pieces.push(`(${parts[best.key]})`)
    rest = rest.slice(best.at + best.key.length)
  }
  const cel = pieces.join(' + ')
  if (/[\uE000-\uE0FF]/.test(cel))
    throw new Error(`a marker survived in ${JSON.stringify(message)}`)
  return cel
}

// ---------------------------------------------------------------------------------------------------------------
// The webhook's messages, produced by its own code

const SAMPLE_ROLE = '775a6be6-45cd-4f19-94f5-6e4f96f093ec'
const MARKED_SA = { namespace: MARK.namespace, name: MARK.name }

function identityWarning(settings: ReviewSettings, key: string, raw: string): string {
  const result = readIdentity(MARKED_SA, { [ANNOTATIONS.role]: SAMPLE_ROLE, [key]: raw }, settings)
  if (result.kind !== 'identity' || result.warnings.length !== 1) {
    throw new Error(`expected one warning for ${key}=${JSON.stringify(raw)}`)
  }
  return result.warnings[0] as string
}

function invalidRole(settings: ReviewSettings): { message: string; warning: string } {
  const result = readIdentity(MARKED_SA, { [ANNOTATIONS.role]: MARK.raw }, settings)
  if (result.kind !== 'invalid') throw new Error('the marker role must be invalid')
  return result
}

function podWarnings(pod: Pod, identity: Identity): { warnings: string[]; blocked?: string } {
  const plan = planPodMutation(pod, identity)
  return { warnings: [...plan.warnings], ...(plan.blocked ? { blocked: plan.blocked } : {}) }
}

function containerWarning(container: Pod['spec']['containers'][number]): string {
  const identity = sampleIdentity()
  const { warnings } = podWarnings({ spec: { containers: [container] } }, identity)
  if (warnings.length !== 1)
    throw new Error(`expected one warning for ${JSON.stringify(container)}`)
  return warnings[0] as string
}

function sampleIdentity(): Identity {
  return {
    roleArn: SAMPLE_ROLE,
    audience: MARK.audience,
    expirationSeconds: DEFAULTS.expirationSeconds,
    stsEndpoint: DEFAULTS.stsEndpoint,
    region: undefined,
  }
}

function blockedMessage(): string {
  // A volume of our name that projects no token is foreign.
  const pod: Pod = {
    spec: { containers: [{ name: 'app' }], volumes: [{ name: TOKEN_VOLUME.name }] },
  }
  const { blocked } = podWarnings(pod, sampleIdentity())
  if (blocked === undefined) throw new Error('a foreign volume must block the mutation')
  return blocked
}

/** The opt-in warning for a labelled pod whose ServiceAccount has no role, from reviewPod itself. */
function optInNoRoleWarning(settings: ReviewSettings): string {
  const request: AdmissionRequest = {
    uid: 'policy-generator',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: MARK.namespace,
    object: {
      metadata: { labels: { [LABELS.optIn]: 'true' } },
      spec: { serviceAccountName: MARK.name, containers: [{ name: 'app' }] },
    },
  }
  const lookup = {
    kind: 'found',
    serviceAccount: { namespace: MARK.namespace, name: MARK.name, annotations: {} },
  } as const
  const decision = reviewPod(request, {
    serviceAccounts: { get: async () => lookup, cached: () => lookup },
    settings,
    signal: () => new AbortController().signal,
  })
  if (decision instanceof Promise || decision.kind !== 'answer') {
    throw new Error('reviewPod must answer at once for a cached ServiceAccount')
  }
  const [warning] = decision.answer.warnings ?? []
  if (warning === undefined) throw new Error('a labelled pod without a role must get a warning')
  return warning
}

// ---------------------------------------------------------------------------------------------------------------
// The CEL

const A = (key: string) => lit(key)
const annotation = (key: string) => `variables.annotations[${A(key)}]`
const hasAnnotation = (key: string) => `${A(key)} in variables.annotations`

/** Variables shared by the three policies (CEL evaluates a variable only when an expression reads it). */
function sharedVariables(settings: ReviewSettings): { name: string; expression: string }[] {
  const exp = `${annotation(ANNOTATIONS.tokenExpiration)}.trim()`
  return [
    { name: 'annotations', expression: 'params.metadata.?annotations.orValue({})' },
    { name: 'hasRole', expression: hasAnnotation(ANNOTATIONS.role) },
    {
      name: 'role',
      expression: `string(variables.annotations[?${A(ANNOTATIONS.role)}].orValue(""))`,
    },
    {
      name: 'roleValid',
      expression: `${celMatches('variables.role', UUID)} || ${celMatches('variables.role', ROLE_ARN)}`,
    },
    {
      name: 'audienceValid',
      expression: `!(${hasAnnotation(ANNOTATIONS.audience)}) || ${celMatches(annotation(ANNOTATIONS.audience), AUDIENCE)}`,
    },
    {
      name: 'audience',
      expression: `${hasAnnotation(ANNOTATIONS.audience)} && variables.audienceValid ? string(${annotation(ANNOTATIONS.audience)}) : ${lit(settings.audience)}`,
    },
    {
      // "": absent; "seconds": whole seconds; "bad": not whole seconds (the webhook's SECONDS test on the trimmed value)
      name: 'expirationForm',
      expression: `!(${hasAnnotation(ANNOTATIONS.tokenExpiration)}) ? "" : ${celMatches(exp, SECONDS)} ? "seconds" : "bad"`,
    },
    {
      name: 'expiration',
      expression:
        `variables.expirationForm != "seconds" ? ${settings.expirationSeconds} : ` +
        `int(${exp}) < ${MIN_EXPIRATION_SECONDS} ? ${MIN_EXPIRATION_SECONDS} : ` +
        `int(${exp}) > ${MAX_EXPIRATION_SECONDS} ? ${settings.expirationSeconds} : int(${exp})`,
    },
    {
      // The webhook's isHttpUrl: a URL that parses, with scheme http or https (docs/policy.md: WHATWG vs Go parser).
      name: 'stsEndpointValid',
      expression: `!(${hasAnnotation(ANNOTATIONS.stsEndpoint)}) || (isURL(${annotation(ANNOTATIONS.stsEndpoint)}) && url(${annotation(ANNOTATIONS.stsEndpoint)}).getScheme() in ["http", "https"])`,
    },
    {
      name: 'stsEndpoint',
      expression: `${hasAnnotation(ANNOTATIONS.stsEndpoint)} && variables.stsEndpointValid ? string(${annotation(ANNOTATIONS.stsEndpoint)}) : ${lit(settings.stsEndpoint)}`,
    },
    {
      name: 'regionValid',
      expression: `!(${hasAnnotation(ANNOTATIONS.region)}) || ${celMatches(annotation(ANNOTATIONS.region), REGION)}`,
    },
    {
      // "" when there is no region to inject
      name: 'region',
      expression: `${hasAnnotation(ANNOTATIONS.region)} && variables.regionValid ? string(${annotation(ANNOTATIONS.region)}) : ${lit(settings.region ?? '')}`,
    },
    {
      name: 'skip',
      expression: `object.metadata.?annotations[?${A(ANNOTATIONS.skipContainers)}].orValue("").split(",").map(n, n.trim()).filter(n, n != "")`,
    },
    {
      name: 'volume',
      expression: `object.spec.?volumes.orValue([]).filter(v, v.name == ${lit(TOKEN_VOLUME.name)})`,
    },
    {
      // A volume of our name is ours when it projects a token for our audience at our file name.
      name: 'blocked',
      expression:
        `size(variables.volume) > 0 && !variables.volume[0].?projected.?sources.orValue([]).exists(s, ` +
        `s.?serviceAccountToken.?path.orValue("") == ${lit(TOKEN_VOLUME.fileName)} && ` +
        `s.?serviceAccountToken.?audience.orValue("") == variables.audience)`,
    },
  ]
}

/** The pod's own ServiceAccount (mirror pods have none: the ServiceAccount admission plugin forbids it). */
const OWN_SERVICE_ACCOUNT = {
  name: 'pod-service-account',
  expression:
    'has(object.spec.serviceAccountName) && object.spec.serviceAccountName == params.metadata.name',
}

/** The env entries container `c` lacks, in the webhook's order (wantedEnv in function/mutate-pod.ts). */
function wantedEnv(): string {
  const mountName = lit(TOKEN_VOLUME.name)
  const tokenFile =
    `c.?volumeMounts.orValue([]).exists(m, m.name == ${mountName}) ? ` +
    `c.volumeMounts.filter(m, m.name == ${mountName}).map(m, ` +
    `m.mountPath.substring(0, size(m.mountPath) - size(m.mountPath.find("/+$"))) + ${lit(`/${TOKEN_VOLUME.fileName}`)})[0] : ` +
    lit(TOKEN_VOLUME.tokenFile)
  const names = 'c.?env.orValue([]).map(e, e.name)'
  const env = (name: string, value: string) => `{"name": ${lit(name)}, "value": ${value}}`
  return (
    `([${env(ENV.roleArn, 'variables.role')}, ${env(ENV.tokenFile, `string(${tokenFile})`)}, ` +
    `${env(ENV.regionalEndpoints, lit(DEFAULTS.regionalEndpoints))}, ${env(ENV.stsEndpoint, 'variables.stsEndpoint')}] + ` +
    `(variables.region != "" && !(${lit(ENV.region)} in ${names}) && !(${lit(ENV.defaultRegion)} in ${names}) ? ` +
    `[${env(ENV.region, 'variables.region')}, ${env(ENV.defaultRegion, 'variables.region')}] : []))` +
    `.filter(e, !(e.name in ${names}))`
  )
}

/** Per container group: the list (by index) of env entries each container lacks. */
const envVariable = (field: string) => ({
  name: `${field}Env`,
  expression: `object.spec.?${field}.orValue([]).map(c, ${wantedEnv()})`,
})

/** The JSONPatch operations for container `c` at index `i` of `field` (planContainer in function/mutate-pod.ts). */
function containerOps(field: string): string {
  const path = `"/spec/${field}/" + string(i)`
  const wanted = `variables.${field}Env[i]`
  const mountName = lit(TOKEN_VOLUME.name)
  const mountPath = lit(TOKEN_VOLUME.mountPath)
  const mount = `Object.spec.containers.volumeMounts{name: ${mountName}, mountPath: ${mountPath}, readOnly: true}`
  return (
    `(has(c.env) ? ${wanted}.map(e, JSONPatch{op: "add", path: ${path} + "/env/-", value: e}) :\n` +
    `  size(${wanted}) == 0 ? [] : [JSONPatch{op: "add", path: ${path} + "/env", value: ${wanted}}]) +\n` +
    `(c.?volumeMounts.orValue([]).exists(m, m.name == ${mountName} || m.mountPath == ${mountPath}) ? [] :\n` +
    `  has(c.volumeMounts) ? [JSONPatch{op: "add", path: ${path} + "/volumeMounts/-", value: ${mount}}] :\n` +
    `  [JSONPatch{op: "add", path: ${path} + "/volumeMounts", value: [${mount}]}])`
  )
}

function mutationExpression(): string {
  const source = `Object.spec.volumes.projected.sources{serviceAccountToken: Object.spec.volumes.projected.sources.serviceAccountToken{audience: variables.audience, expirationSeconds: variables.expiration, path: ${lit(TOKEN_VOLUME.fileName)}}}`
  const volume = `Object.spec.volumes{name: ${lit(TOKEN_VOLUME.name)}, projected: Object.spec.volumes.projected{sources: [${source}]}}`
  const group = (field: string) =>
    `object.spec.?${field}.orValue([]).transformList(i, c, !(c.name in variables.skip),\n${containerOps(field)}\n).flatten()`
  return [
    '!variables.roleValid || variables.blocked ? [] :',
    '(size(variables.volume) > 0 ? [] :',
    `  has(object.spec.volumes) ? [JSONPatch{op: "add", path: "/spec/volumes/-", value: ${volume}}] :`,
    `  [JSONPatch{op: "add", path: "/spec/volumes", value: [${volume}]}])`,
    `+ ${group('initContainers')}`,
    `+ ${group('containers')}`,
  ].join('\n')
}

/** The webhook's warnings for the pod and its ServiceAccount, in the webhook's order (decideIdentity). */
function warningsExpression(settings: ReviewSettings): string {
  const quoted = (key: string) => celQuote(annotation(key))
  const sa = { [MARK.namespace]: 'params.metadata.namespace', [MARK.name]: 'params.metadata.name' }
  const raw = (value: string, cel: string) => ({
    [JSON.stringify(value)]: cel,
    ...sa,
  })
  const warnIf = (condition: string, message: string) => `(${condition} ? [${message}] : [])`
  const audience = template(
    identityWarning(settings, ANNOTATIONS.audience, MARK.raw),
    raw(MARK.raw, quoted(ANNOTATIONS.audience)),
  )
  const expKey = ANNOTATIONS.tokenExpiration
  const expBad = template(
    identityWarning(settings, expKey, MARK.raw),
    raw(MARK.raw, quoted(expKey)),
  )
  const expLow = template(identityWarning(settings, expKey, '\t1'), raw('\t1', quoted(expKey)))
  const expHigh = template(
    identityWarning(settings, expKey, '\t999999999999'),
    raw('\t999999999999', quoted(expKey)),
  )
  const expSeconds = `int(${annotation(expKey)}.trim())`
  const sts = template(
    identityWarning(settings, ANNOTATIONS.stsEndpoint, MARK.raw),
    raw(MARK.raw, quoted(ANNOTATIONS.stsEndpoint)),
  )
  const region = template(
    identityWarning(settings, ANNOTATIONS.region, MARK.raw),
    raw(MARK.raw, quoted(ANNOTATIONS.region)),
  )
  const identityWarnings = [
    warnIf('!variables.audienceValid', audience),
    warnIf('variables.expirationForm == "bad"', expBad),
    warnIf(
      `variables.expirationForm == "seconds" && ${expSeconds} < ${MIN_EXPIRATION_SECONDS}`,
      expLow,
    ),
    warnIf(
      `variables.expirationForm == "seconds" && ${expSeconds} > ${MAX_EXPIRATION_SECONDS}`,
      expHigh,
    ),
    warnIf('!variables.stsEndpointValid', sts),
    warnIf('!variables.regionValid', region),
  ].join(' + ')

  const container = { [MARK.container]: 'c.name' }
  const otherRole = template(
    containerWarning({ name: MARK.container, env: [{ name: ENV.roleArn, value: MARK.raw }] }),
    container,
  )
  const staticKey = template(
    containerWarning({ name: MARK.container, env: [{ name: ENV.accessKeyId, value: 'x' }] }),
    container,
  )
  const mountedAtPath = template(
    containerWarning({
      name: MARK.container,
      volumeMounts: [{ name: MARK.volume, mountPath: TOKEN_VOLUME.mountPath }],
    }),
    { ...container, [MARK.volume]: 'm.name' },
  )
  const containerWarnings =
    `(object.spec.?initContainers.orValue([]) + object.spec.containers).filter(c, !(c.name in variables.skip)).map(c, ` +
    `c.?env.orValue([]).map(e, ` +
    `${warnIf(`e.name == ${lit(ENV.roleArn)} && e.?value.orValue("") != variables.role`, otherRole)} + ` +
    `${warnIf(`e.name == ${lit(ENV.accessKeyId)}`, staticKey)}).flatten() + ` +
    `c.?volumeMounts.orValue([]).filter(m, m.mountPath == ${lit(TOKEN_VOLUME.mountPath)} && m.name != ${lit(TOKEN_VOLUME.name)}).map(m, ${mountedAtPath})` +
    ').flatten()'
  const blocked = template(blockedMessage(), { [MARK.audience]: 'variables.audience' })
  const asked = template(optInNoRoleWarning(settings), sa)
  const invalid = template(invalidRole(settings).warning, {
    [JSON.stringify(MARK.raw)]: celQuote('variables.role'),
  })
  const optedIn = `object.metadata.?labels[?${lit(LABELS.optIn)}].orValue("") == "true"`
  return [
    `(!variables.hasRole ? ${warnIf(optedIn, asked)} :`,
    `!variables.roleValid ? ${settings.invalidRolePolicy === 'warn' ? `[${invalid}]` : '[]'} :`,
    `${identityWarnings}`,
    `+ (variables.blocked ? [${blocked}] : ${containerWarnings}))`,
    `.map(w, ${celShorten('w')})`,
  ].join('\n')
}

function denyMessage(settings: ReviewSettings): string {
  return template(invalidRole(settings).message, {
    [JSON.stringify(MARK.raw)]: celQuote('variables.role'),
    [MARK.namespace]: 'params.metadata.namespace',
    [MARK.name]: 'params.metadata.name',
  })
}

// ---------------------------------------------------------------------------------------------------------------
// The objects

/** The selectors of the shipped MutatingWebhookConfiguration, so the policy serves the same pods. */
function webhookSelectors(): { namespaceSelector: Doc; objectSelector: Doc } {
  const [config] = parseYamlDocuments(readFileSync(resolve(ROOT, WEBHOOK_FILE), 'utf8')) as Doc[]
  const webhook = (config?.['webhooks'] as Doc[] | undefined)?.[0]
  if (webhook === undefined) throw new Error(`${WEBHOOK_FILE} has no webhook`)
  return {
    namespaceSelector: webhook['namespaceSelector'] as Doc,
    objectSelector: webhook['objectSelector'] as Doc,
  }
}

const LABELS_ON_OBJECTS = {
  'app.kubernetes.io/name': 'irsa-webhook',
  'app.kubernetes.io/part-of': 'irsa-webhook',
  'app.kubernetes.io/component': 'policy',
}

function matchConstraints(): Doc {
  return {
    resourceRules: [
      {
        apiGroups: [''],
        apiVersions: ['v1'],
        operations: ['CREATE'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ],
    matchPolicy: 'Equivalent',
    ...webhookSelectors(),
  }
}

function binding(kind: string, name: string, options: PolicyOptions, extra: Doc): Doc {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: { name, labels: LABELS_ON_OBJECTS },
    spec: {
      policyName: name,
      paramRef: { selector: {}, parameterNotFoundAction: 'Allow' },
      ...(options.namespaceSelector
        ? { matchResources: { namespaceSelector: options.namespaceSelector } }
        : {}),
      ...extra,
    },
  }
}

/** Every object of policy mode, for these settings. */
export function policyObjects(options: PolicyOptions = {}): Doc[] {
  const settings = options.settings ?? defaultSettings()
  const names = policyNames(`${options.namePrefix ?? ''}${POLICY_NAMES.mutating}`)
  const variables = sharedVariables(settings)
  const paramKind = { apiVersion: 'v1', kind: 'ServiceAccount' }
  const fault =
    options.faultExpression === undefined
      ? []
      : [{ name: 'fault', expression: options.faultExpression }]
  const mutating: Doc = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingAdmissionPolicy',
    metadata: { name: names.mutating, labels: LABELS_ON_OBJECTS },
    spec: {
      paramKind,
      matchConstraints: matchConstraints(),
      failurePolicy: 'Fail',
      reinvocationPolicy: 'IfNeeded',
      // Evaluated once per ServiceAccount of the namespace: only the pod's own one, and only with a role, goes on.
      matchConditions: [
        OWN_SERVICE_ACCOUNT,
        {
          name: 'service-account-has-role',
          expression: `has(params.metadata.annotations) && ${A(ANNOTATIONS.role)} in params.metadata.annotations`,
        },
      ],
      variables: [...variables, envVariable('initContainers'), envVariable('containers'), ...fault],
      mutations: [
        {
          patchType: 'JSONPatch',
          jsonPatch: {
            expression:
              options.faultExpression === undefined
                ? mutationExpression()
                : `variables.fault ? [] : ${mutationExpression()}`,
          },
        },
      ],
    },
  }
  const deny: Doc = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: names.deny, labels: LABELS_ON_OBJECTS },
    spec: {
      paramKind,
      matchConstraints: matchConstraints(),
      failurePolicy: 'Fail',
      matchConditions: [OWN_SERVICE_ACCOUNT],
      variables: [...variables, escapesVariable()],
      validations: [
        {
          expression: '!variables.hasRole || variables.roleValid',
          messageExpression: denyMessage(settings),
          reason: 'Forbidden',
        },
      ],
    },
  }
  const warnings: Doc = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: names.warnings, labels: LABELS_ON_OBJECTS },
    spec: {
      paramKind,
      matchConstraints: matchConstraints(),
      // Warnings never block a pod.
      failurePolicy: 'Ignore',
      matchConditions: [OWN_SERVICE_ACCOUNT],
      variables: [
        ...variables,
        escapesVariable(),
        { name: 'warnings', expression: warningsExpression(settings) },
      ],
      validations: Array.from({ length: WARNING_SLOTS }, (_, slot) => ({
        expression: `size(variables.warnings) <= ${slot}`,
        messageExpression:
          slot < WARNING_SLOTS - 1
            ? `variables.warnings[${slot}]`
            : `lists.range(size(variables.warnings)).filter(i, i >= ${slot}).map(i, variables.warnings[i]).join("; ")`,
      })),
    },
  }
  const objects = [
    mutating,
    binding('MutatingAdmissionPolicyBinding', names.mutating, options, {}),
    warnings,
    binding('ValidatingAdmissionPolicyBinding', names.warnings, options, {
      validationActions: ['Warn'],
    }),
  ]
  if (settings.invalidRolePolicy === 'deny') {
    objects.push(
      deny,
      binding('ValidatingAdmissionPolicyBinding', names.deny, options, {
        validationActions: ['Deny'],
      }),
    )
  }
  return objects
}

/** The webhook's settings with no env set: what the shipped policy bakes in. */
export function defaultSettings(): ReviewSettings {
  return settingsFor({})
}

/** The webhook's settings for a config env record (the same parsing as the webhook's). */
export function settingsFor(env: Readonly<Record<string, string>>): ReviewSettings {
  const config = loadConfig(env)
  if (!config.ok) throw new Error(config.error)
  return reviewSettings(config.value)
}

const HEADER = `# GENERATED by scripts/policy.ts (npm run policy:generate) from the webhook's own constants, patterns and
# messages; do not edit: test/unit/policy.test.ts fails when this file and the generator disagree.
#
# Policy mode (Kubernetes >= 1.36, admissionregistration.k8s.io/v1): the API server itself gives pods their Vultr
# identity; no webhook process, no certificate, no cold start. docs/policy.md explains it and what differs.
# The MutatingAdmissionPolicy is evaluated once per ServiceAccount of the pod's namespace (paramKind ServiceAccount,
# paramRef.selector {}); its first matchCondition keeps the pod's own ServiceAccount only.
`

/** The file's text: every object as one YAML document. */
export function renderPolicyYaml(
  objects: readonly Doc[] = policyObjects(),
  header = HEADER,
): string {
  const body = objects
    .map((object) => stringify(object, { lineWidth: 0, blockQuote: 'literal' }))
    .join('---\n')
  return `${header}${body}`
}

const SETTINGS_ENV = [
  'TOKEN_AUDIENCE',
  'TOKEN_EXPIRATION_SECONDS',
  'STS_ENDPOINT',
  'DEFAULT_REGION',
  'INVALID_ROLE_POLICY',
] as const

function main(argv: readonly string[]): number {
  let check = false
  let fromEnv = false
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        check: { type: 'boolean', default: false },
        'from-env': { type: 'boolean', default: false },
      },
    })
    check = values.check
    fromEnv = values['from-env']
  } catch (error) {
    process.stderr.write(
      `policy: ${(error as Error).message}\nusage: node scripts/policy.ts [--check | --from-env]\n`,
    )
    return 2
  }
  if (fromEnv) {
    const env = Object.fromEntries(
      SETTINGS_ENV.flatMap((name) => {
        const value = process.env[name]
        return value === undefined ? [] : [[name, value]]
      }),
    )
    let settings: ReviewSettings
    try {
      settings = settingsFor(env)
    } catch (error) {
      process.stderr.write(`policy: invalid webhook config:\n${(error as Error).message}\n`)
      return 2
    }
    const given = Object.entries(env).map(([name, value]) => `${name}=${value}`)
    const header = `# Generated by scripts/policy.ts --from-env (${given.join(' ') || 'the defaults'}) from the webhook's own constants,\n# patterns and messages. Policy mode: docs/policy.md.\n`
    process.stdout.write(renderPolicyYaml(policyObjects({ settings }), header))
    return 0
  }
  const path = resolve(ROOT, POLICY_FILE)
  const text = renderPolicyYaml()
  if (check) {
    const current = readFileSync(path, 'utf8')
    if (current === text) return 0
    process.stderr.write(`${POLICY_FILE} is out of date: run npm run policy:generate\n`)
    return 1
  }
  writeFileSync(path, text)
  process.stdout.write(`wrote ${POLICY_FILE}\n`)
  return 0
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2))
