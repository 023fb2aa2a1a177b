/**
 * AdmissionReview `admission.k8s.io/v1` in and out. Pure.
 *
 * Wire rules (k8s.io/apiserver `request/admissionreview.go`): the response echoes `apiVersion`, `kind` and
 * `request.uid`; `patch` is base64 JSON and is sent, with `patchType: JSONPatch`, only when non-empty.
 * @see https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#response
 * @module
 */
import * as z from 'zod'
import type { AddOperation } from './mutate-pod.ts'
import { err, ok, type Result } from './result.ts'

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1'
export const ADMISSION_KIND = 'AdmissionReview'

// Plain (stripping) objects: the webhook reads only these fields, and zod's compiled fast path then checks them
// without visiting and copying every other field of the request (userInfo, oldObject, options, ...), which a
// loose object does on every review.
const requestSchema = z.object({
  uid: z.string().min(1, 'must be a non-empty string'),
  kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }),
  operation: z.string(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  subResource: z.string().optional(),
  dryRun: z.boolean().optional(),
  object: z.unknown().optional(),
})

const reviewSchema = z.object({
  apiVersion: z.literal(ADMISSION_API_VERSION, `must be ${ADMISSION_API_VERSION}`),
  kind: z.literal(ADMISSION_KIND, `must be ${ADMISSION_KIND}`),
  request: requestSchema,
})

export type AdmissionRequest = z.infer<typeof requestSchema>

/** Formats zod issues as `path: message` lines, with the path as Kubernetes users write it. */
function describeIssues(error: z.ZodError, root: string): string {
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

/** Parses an AdmissionReview v1 request body; the error names the field and the expected form. */
export function parseAdmissionReview(body: unknown): Result<AdmissionRequest, string> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return err('body must be a JSON object (an AdmissionReview admission.k8s.io/v1)')
  }
  const parsed = reviewSchema.safeParse(body)
  if (!parsed.success) return err(describeIssues(parsed.error, 'AdmissionReview'))
  return ok(parsed.data.request)
}

/** What the webhook answers for one request, before it is wrapped in an AdmissionReview. */
export interface AdmissionAnswer {
  readonly allowed: boolean
  readonly patch?: readonly AddOperation[]
  readonly warnings?: readonly string[]
  /** For denials: shown to the user by kubectl as "admission webhook … denied the request: <message>". */
  readonly message?: string
}

/** Each warning is cut to this many characters (the policy's warnings too: scripts/policy.ts). */
export const MAX_WARNING = 120

function shorten(warning: string): string {
  return warning.length > MAX_WARNING ? `${warning.slice(0, MAX_WARNING - 3)}...` : warning
}

/** Builds the response AdmissionReview for `uid`. */
export function admissionResponse(uid: string, answer: AdmissionAnswer): object {
  const response: Record<string, unknown> = { uid, allowed: answer.allowed }
  if (answer.patch !== undefined && answer.patch.length > 0) {
    response['patchType'] = 'JSONPatch'
    response['patch'] = Buffer.from(JSON.stringify(answer.patch)).toString('base64')
  }
  if (answer.warnings !== undefined && answer.warnings.length > 0) {
    response['warnings'] = answer.warnings.map(shorten)
  }
  if (!answer.allowed) {
    response['status'] = { code: 403, reason: 'Forbidden', message: answer.message ?? 'denied' }
  }
  return { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response }
}
