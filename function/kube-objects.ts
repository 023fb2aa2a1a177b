/**
 * Narrow types for the Kubernetes objects the webhook reads: only the fields it uses, and unknown fields pass
 * through untouched (they are never re-serialised: patches address the raw request object).
 * @module
 */
import * as z from 'zod'

/** An env var as the webhook reads it. */
export interface EnvVar {
  readonly name: string
  readonly value?: string | undefined
  readonly valueFrom?: unknown
}

export interface VolumeMount {
  readonly name: string
  readonly mountPath: string
}

/** A container or init container as the webhook reads it (other fields are never touched). */
export interface Container {
  readonly name: string
  readonly env?: readonly EnvVar[] | null | undefined
  readonly volumeMounts?: readonly VolumeMount[] | null | undefined
}

export interface Volume {
  readonly name: string
  readonly projected?:
    | {
        readonly sources?:
          | readonly {
              readonly serviceAccountToken?:
                | { readonly audience?: string | undefined; readonly path: string }
                | undefined
            }[]
          | null
          | undefined
      }
    | undefined
}

/** The parts of a Pod the webhook reads; checked in place by `readPod` (pod.ts). */
export interface Pod {
  readonly metadata?:
    | {
        readonly name?: string | undefined
        readonly generateName?: string | undefined
        readonly namespace?: string | undefined
        readonly annotations?: Readonly<Record<string, string>> | null | undefined
        readonly labels?: Readonly<Record<string, string>> | null | undefined
      }
    | undefined
  readonly spec: {
    readonly serviceAccountName?: string | undefined
    readonly containers: readonly Container[]
    readonly initContainers?: readonly Container[] | null | undefined
    readonly volumes?: readonly Volume[] | null | undefined
  }
}

/** The parts of a ServiceAccount the webhook reads. */
export const serviceAccountSchema = z.looseObject({
  kind: z.literal('ServiceAccount'),
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
})

/** A ServiceAccount reduced to what the webhook uses (what caches keep). */
export interface ServiceAccountInfo {
  readonly namespace: string
  readonly name: string
  readonly annotations: Readonly<Record<string, string>>
}
