/**
 * Doctor checks for Knative mode: the Knative Service, and the DomainMapping + ClusterDomainClaim that let the
 * gateway serve the alias Service's in-cluster name with the webhook's certificate.
 * @module
 */

import { getObject } from '../shared/kube.ts'
import {
  type CheckResult,
  conditionMessage,
  conditionTrue,
  type DoctorContext,
  fail,
  pass,
  serviceHost,
  skip,
} from './context.ts'

const KSVC = 'irsa-webhook'
/** The gateway namespace of the shipped knative/ (knative/gateway.yaml), when no webhook configuration names one. */
const DEFAULT_GATEWAY_NAMESPACE = 'kourier-system'

/** The gateway's namespace: the one the webhook's Service is in (the gateway alias), else the shipped default. */
export function gatewayNamespace(context: Pick<DoctorContext, 'webhook'>): string {
  return context.webhook?.clientConfig?.service?.namespace ?? DEFAULT_GATEWAY_NAMESPACE
}

/**
 * The gateway's namespace exists. knative/ puts the alias Service there and kubectl does not create it: without it
 * `kubectl apply -k knative/` fails with `namespaces "kourier-system" not found`.
 */
export async function checkGatewayNamespace(context: DoctorContext): Promise<CheckResult> {
  const configured = context.webhook?.clientConfig?.service?.namespace
  const namespace = gatewayNamespace(context)
  const name = `gateway namespace ${namespace}`
  const got = await getObject(context, `/api/v1/namespaces/${namespace}`)
  if ('missing' in got) {
    return fail(
      name,
      `not found: the gateway alias Service cannot be created there (kubectl apply -k knative/ fails with namespaces "${namespace}" not found)`,
      `install Knative Serving with Kourier first (kubectl get pods -A -l app=3scale-kourier-gateway shows the gateway's namespace); for a gateway in knative-serving (Knative Operator) use kubectl apply -k knative/overlays/operator; then re-run kubectl apply -k knative/`,
    )
  }
  if ('error' in got) return fail(name, `cannot read it: ${got.error}`, 'check your access')
  return pass(
    name,
    configured === undefined ? 'exists (the shipped default: no webhook names one)' : 'exists',
  )
}

export function domainMappingPath(namespace: string, host: string): string {
  return `/apis/serving.knative.dev/v1beta1/namespaces/${namespace}/domainmappings/${host}`
}

/** The Knative Service is Ready (it may be scaled to zero: Ready still holds). */
export async function checkKnativeService(context: DoctorContext): Promise<CheckResult> {
  const name = `Knative Service ${context.namespace}/${KSVC}`
  const path = `/apis/serving.knative.dev/v1/namespaces/${context.namespace}/services/${KSVC}`
  const got = await getObject(context, path)
  if ('missing' in got) return fail(name, 'not found', 'kubectl apply -k knative/')
  if ('error' in got)
    return fail(name, `cannot read it: ${got.error}`, 'is Knative Serving installed?')
  if (conditionTrue(got.found)) return pass(name, 'Ready')
  return fail(
    name,
    conditionMessage(got.found),
    `kubectl -n ${context.namespace} describe ksvc ${KSVC}`,
  )
}

/** The DomainMapping named after the alias Service's host is Ready and names a TLS secret. */
export async function checkDomainMapping(context: DoctorContext): Promise<CheckResult> {
  const service = context.webhook?.clientConfig?.service
  if (service === undefined) return skip('DomainMapping', 'no webhook Service')
  const host = serviceHost(service)
  const name = `DomainMapping ${context.namespace}/${host}`
  const got = await getObject(context, domainMappingPath(context.namespace, host))
  const fix = 'kubectl apply -k knative/ (with the gateway namespace variable set to yours)'
  if ('missing' in got) return fail(name, 'not found: the gateway does not serve this host', fix)
  if ('error' in got) return fail(name, `cannot read it: ${got.error}`, fix)
  const tls = (got.found['spec'] as { tls?: { secretName?: string } } | undefined)?.tls?.secretName
  if (tls === undefined)
    return fail(name, 'has no spec.tls.secretName', './generate-certs.sh --mode knative')
  if (!conditionTrue(got.found)) {
    return fail(
      name,
      conditionMessage(got.found),
      `kubectl -n ${context.namespace} describe domainmapping ${host}`,
    )
  }
  return pass(name, `Ready, TLS secret ${tls}`)
}

/** The ClusterDomainClaim for the host exists and delegates it to the webhook's namespace. */
export async function checkDomainClaim(context: DoctorContext): Promise<CheckResult> {
  const service = context.webhook?.clientConfig?.service
  if (service === undefined) return skip('ClusterDomainClaim', 'no webhook Service')
  const host = serviceHost(service)
  const name = `ClusterDomainClaim ${host}`
  const path = `/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims/${host}`
  const got = await getObject(context, path)
  const fix =
    'kubectl apply -k knative/ (or enable autocreate-cluster-domain-claims in config-network)'
  if ('missing' in got) return fail(name, 'not found: the DomainMapping cannot claim its host', fix)
  if ('error' in got) return fail(name, `cannot read it: ${got.error}`, fix)
  const owner = (got.found['spec'] as { namespace?: string } | undefined)?.namespace
  if (owner !== context.namespace) {
    return fail(name, `claimed for namespace ${owner ?? '(none)'}, not ${context.namespace}`, fix)
  }
  return pass(name, `claimed for ${owner}`)
}
