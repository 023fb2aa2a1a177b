/**
 * Reads a ServiceAccount's annotations into the identity to inject. Pure.
 *
 * Precedence, per setting: ServiceAccount annotation > webhook config (env) > built-in default. The role comes only
 * from the ServiceAccount: a pod can never choose or change it.
 * @module
 */
import { ANNOTATIONS, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS } from './names.ts'

/** What gets injected for one ServiceAccount. */
export interface Identity {
  readonly roleArn: string
  readonly audience: string
  readonly expirationSeconds: number
  readonly stsEndpoint: string
  readonly region: string | undefined
}

/** Webhook-wide defaults for the identity (everything but the role), from config. */
export type IdentityDefaults = Omit<Identity, 'roleArn'>

export type IdentityResult =
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly message: string; readonly warning: string }
  | { readonly kind: 'identity'; readonly identity: Identity; readonly warnings: readonly string[] }

/** A role (or cluster) id as Vultr writes it: a UUID. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// The patterns are exported for the policy generator (scripts/policy.ts), which writes them into CEL.
/** STS RoleArn: 20..2048 characters; an `arn:` value of printable, non-space ASCII. */
export const ROLE_ARN = /^arn:[!-~]{16,2044}$/
export const AUDIENCE = /^[!-~]{1,256}$/
export const REGION = /^[a-z0-9-]{2,32}$/
/** A token expiration, tested on the trimmed annotation value. */
export const SECONDS = /^\d{1,12}$/
/** A quoted user value shows at most this many characters (longer ones end in `...`). */
export const QUOTE_LIMIT = 60

/** Quotes a user value for a message: JSON-escaped (control characters visible) and cut to 60 characters. */
function quote(value: string): string {
  const shown = value.length > QUOTE_LIMIT ? `${value.slice(0, QUOTE_LIMIT - 3)}...` : value
  return JSON.stringify(shown)
}

/** True when the value is a role UUID or an `arn:` role value. */
export function isValidRole(value: string): boolean {
  return UUID.test(value) || ROLE_ARN.test(value)
}

function readExpiration(raw: string | undefined, fallback: number, warnings: string[]): number {
  if (raw === undefined) return fallback
  const key = ANNOTATIONS.tokenExpiration
  if (!SECONDS.test(raw.trim())) {
    warnings.push(`${key} ${quote(raw)} is not whole seconds; using ${fallback}`)
    return fallback
  }
  const seconds = Number(raw.trim())
  if (seconds < MIN_EXPIRATION_SECONDS) {
    warnings.push(
      `${key} ${quote(raw)} is below ${MIN_EXPIRATION_SECONDS}; using ${MIN_EXPIRATION_SECONDS}`,
    )
    return MIN_EXPIRATION_SECONDS
  }
  if (seconds > MAX_EXPIRATION_SECONDS) {
    warnings.push(`${key} ${quote(raw)} is above ${MAX_EXPIRATION_SECONDS}; using ${fallback}`)
    return fallback
  }
  return seconds
}

function readChecked<Fallback extends string | undefined>(
  key: string,
  raw: string | undefined,
  check: (value: string) => boolean,
  fallback: Fallback,
  warnings: string[],
): string | Fallback {
  if (raw === undefined) return fallback
  if (check(raw)) return raw
  warnings.push(`${key} ${quote(raw)} is invalid; using the default`)
  return fallback
}

function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false
  const { protocol } = new URL(value)
  return protocol === 'https:' || protocol === 'http:'
}

/**
 * Reads the identity from ServiceAccount annotations.
 * - no `api.vultr.com/role` → `none` (not opted in);
 * - an invalid role → `invalid`, with a message naming the ServiceAccount, annotation, value and expected form;
 * - otherwise the identity; invalid optional annotations fall back to defaults with a warning each.
 */
export function readIdentity(
  serviceAccount: { readonly namespace: string; readonly name: string },
  annotations: Readonly<Record<string, string>>,
  defaults: IdentityDefaults,
): IdentityResult {
  const role = annotations[ANNOTATIONS.role]
  if (role === undefined) return { kind: 'none' }
  if (!isValidRole(role)) {
    return {
      kind: 'invalid',
      message:
        `ServiceAccount ${serviceAccount.namespace}/${serviceAccount.name} annotation ${ANNOTATIONS.role} ` +
        `has invalid value ${quote(role)}: expected a role UUID ` +
        `(e.g. 775a6be6-45cd-4f19-94f5-6e4f96f093ec) or an arn: value (arn:aws:iam::<org-id>:role/<role-id>)`,
      warning: `${ANNOTATIONS.role} ${quote(role)} is not a role UUID or arn: value; pod not mutated`,
    }
  }
  const warnings: string[] = []
  const identity: Identity = {
    roleArn: role,
    audience: readChecked(
      ANNOTATIONS.audience,
      annotations[ANNOTATIONS.audience],
      (v) => AUDIENCE.test(v),
      defaults.audience,
      warnings,
    ),
    expirationSeconds: readExpiration(
      annotations[ANNOTATIONS.tokenExpiration],
      defaults.expirationSeconds,
      warnings,
    ),
    stsEndpoint: readChecked(
      ANNOTATIONS.stsEndpoint,
      annotations[ANNOTATIONS.stsEndpoint],
      isHttpUrl,
      defaults.stsEndpoint,
      warnings,
    ),
    region: readChecked(
      ANNOTATIONS.region,
      annotations[ANNOTATIONS.region],
      (v) => REGION.test(v),
      defaults.region,
      warnings,
    ),
  }
  return { kind: 'identity', identity, warnings }
}
