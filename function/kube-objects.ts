/**
 * Narrow, loose schemas for the Kubernetes objects the webhook reads: only the fields it uses are checked, and
 * unknown fields pass through untouched (they are never re-serialised: patches address the raw request object).
 * @module
 */
import { z } from 'zod'

const envVarSchema = z.looseObject({
  name: z.string(),
  value: z.string().optional(),
  valueFrom: z.unknown().optional(),
})

const volumeMountSchema = z.looseObject({ name: z.string(), mountPath: z.string() })

const containerSchema = z.looseObject({
  name: z.string(),
  env: z.array(envVarSchema).nullish(),
  volumeMounts: z.array(volumeMountSchema).nullish(),
})

const tokenProjectionSchema = z.looseObject({
  audience: z.string().optional(),
  expirationSeconds: z.number().optional(),
  path: z.string(),
})

const volumeSchema = z.looseObject({
  name: z.string(),
  projected: z
    .looseObject({
      sources: z
        .array(z.looseObject({ serviceAccountToken: tokenProjectionSchema.optional() }))
        .nullish(),
    })
    .optional(),
})

const metadataSchema = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  annotations: z.record(z.string(), z.string()).nullish(),
})

/** The parts of a Pod the webhook reads. */
export const podSchema = z.looseObject({
  metadata: metadataSchema.optional(),
  spec: z.looseObject({
    serviceAccountName: z.string().optional(),
    containers: z.array(containerSchema),
    initContainers: z.array(containerSchema).nullish(),
    volumes: z.array(volumeSchema).nullish(),
  }),
})

/** The parts of a ServiceAccount the webhook reads. */
export const serviceAccountSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
})

export type Pod = z.infer<typeof podSchema>
export type Container = z.infer<typeof containerSchema>
export type Volume = z.infer<typeof volumeSchema>

/** A ServiceAccount reduced to what the webhook uses (what caches keep). */
export interface ServiceAccountInfo {
  readonly namespace: string
  readonly name: string
  readonly annotations: Readonly<Record<string, string>>
}

/** Formats zod issues as `path: message` lines, with the path as Kubernetes users write it. */
export function describeIssues(error: z.ZodError, root: string): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.reduce<string>(
        (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : `${acc}.${String(key)}`),
        root,
      )
      return `${path}: ${issue.message}`
    })
    .join('; ')
}
