/**
 * Our MutatingWebhookConfiguration as the commands read it: where it is in the API, the parts of its webhook entry
 * they use (service, caBundle, selectors, policies), and how to find our entry in it.
 * @module
 */

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>
  readonly matchExpressions?: readonly {
    readonly key: string
    readonly operator: string
    readonly values?: readonly string[]
  }[]
}

export interface ServiceRef {
  readonly namespace: string
  readonly name: string
  readonly port?: number
  readonly path?: string
}

/** The parts of a MutatingWebhookConfiguration webhook entry the commands read. */
export interface WebhookEntry {
  readonly name: string
  readonly clientConfig: {
    readonly service?: ServiceRef
    readonly caBundle?: string
    readonly url?: string
  }
  readonly namespaceSelector?: LabelSelector
  readonly objectSelector?: LabelSelector
  readonly matchConditions?: readonly unknown[]
  readonly failurePolicy?: string
  readonly timeoutSeconds?: number
  readonly reinvocationPolicy?: string
  readonly sideEffects?: string
  readonly admissionReviewVersions?: readonly string[]
}

export const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations'
const WEBHOOK_NAME = 'irsa.vultr.com'

/** Our webhook entry of a MutatingWebhookConfiguration (by name, else the first), or undefined when it has none. */
export function ourWebhook(configuration: unknown): WebhookEntry | undefined {
  const webhooks = ((configuration as { webhooks?: unknown } | undefined)?.webhooks ??
    []) as WebhookEntry[]
  return webhooks.find((w) => w.name === WEBHOOK_NAME) ?? webhooks[0]
}
