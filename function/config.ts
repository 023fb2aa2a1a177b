/**
 * The webhook's configuration: one zod schema over an env record. Pure: the env is a parameter, and only
 * `handler.ts` passes `process.env`. Every problem is reported at once, and a bad value stops the process at start.
 * @module
 */
// A namespace import (not `import { z }`, which is an object holding all of zod): the bundler keeps only what is
// used, which leaves out zod's 40-odd locales and halves what a cold start loads (docs/performance.md, cold start).
import * as z from 'zod'
import { type InClusterSettings, inClusterSettings } from './in-cluster.ts'
import { DEFAULTS, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS } from './names.ts'
import { err, ok, type Result } from './result.ts'
import type { ReviewSettings } from './review-pod.ts'

const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional()

const blankToUndefined = (value: unknown) =>
  typeof value === 'string' && value.trim() === '' ? undefined : value
const wholeNumber = (min: number, max: number) => z.coerce.number().int().min(min).max(max)

/** An optional integer variable; empty means unset (`z.coerce` alone would read '' as 0). */
const optionalInteger = (min: number, max: number) =>
  z.preprocess(blankToUndefined, wholeNumber(min, max).optional())

/** An integer variable with a default, which also applies when the variable is empty. */
const integer = (min: number, max: number, fallback: number) =>
  z.preprocess(blankToUndefined, wholeNumber(min, max).default(fallback))

/** Env vars read by the webhook, with defaults. See the README's configuration table. */
export const configSchema = z
  .object({
    PORT: optionalInteger(0, 65_535).describe(
      'Listen port; default 8443 (HTTPS) or 8080 (HTTP); 0 picks a free port (tests)',
    ),
    HOST: z.string().default('0.0.0.0').describe('Listen address'),
    K_SERVICE: optionalString.describe('Set by Knative: serve plain HTTP, TLS ends at the gateway'),
    TLS_CERT_PATH: z.string().default('/etc/webhook/certs/tls.crt'),
    TLS_KEY_PATH: z.string().default('/etc/webhook/certs/tls.key'),
    TLS_RELOAD_INTERVAL_MS: integer(100, 3_600_000, 10_000),
    STS_ENDPOINT: z.url({ protocol: /^https?$/ }).default(DEFAULTS.stsEndpoint),
    TOKEN_AUDIENCE: z.string().regex(/^\S+$/, 'no whitespace').default(DEFAULTS.audience),
    TOKEN_EXPIRATION_SECONDS: integer(
      MIN_EXPIRATION_SECONDS,
      MAX_EXPIRATION_SECONDS,
      DEFAULTS.expirationSeconds,
    ),
    DEFAULT_REGION: optionalString.pipe(
      z
        .string()
        .regex(/^[a-z0-9-]{2,32}$/, 'a region name like ewr')
        .optional(),
    ),
    INVALID_ROLE_POLICY: z.enum(['deny', 'warn']).default('deny'),
    SA_LOOKUP_MODE: z.enum(['get', 'watch']).default('get'),
    SA_CACHE_TTL_SECONDS: integer(0, 3600, 10),
    SA_WATCH_TIMEOUT_SECONDS: integer(1, 3600, 300).describe(
      'watch mode: each watch ends and restarts after this long, which is when a revoked permission shows',
    ),
    SA_WATCH_UNREADY_AFTER_SECONDS: integer(0, 86_400, 60).describe(
      'watch mode: /readyz fails once the informer has been out of sync this long (0: never)',
    ),
    LOOKUP_TIMEOUT_MS: integer(100, 30_000, 3_000),
    MUTATE_PATH_TOKEN: optionalString.pipe(
      z
        .string()
        .regex(/^[A-Za-z0-9._~-]{16,256}$/, '16-256 URL-safe characters')
        .optional(),
    ),
    BODY_LIMIT_BYTES: integer(1024, 64 * 1024 * 1024, 6 * 1024 * 1024),
    SHUTDOWN_DELAY_MS: integer(0, 600_000, 0).describe(
      'After SIGTERM, keep serving (unready) this long so endpoints stop routing to us',
    ),
    SHUTDOWN_TIMEOUT_MS: integer(0, 600_000, 20_000),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    SERVICE_ACCOUNTS_FILE: optionalString.describe(
      'Read ServiceAccounts from this YAML file instead of a cluster (local development)',
    ),
    KUBECONFIG: optionalString,
    KUBERNETES_SERVICE_HOST: optionalString.describe(
      'Set by Kubernetes in every pod: the API server address',
    ),
    KUBERNETES_SERVICE_PORT: integer(1, 65_535, 443),
    KUBE_SERVICEACCOUNT_DIR: z
      .string()
      .default('/var/run/secrets/kubernetes.io/serviceaccount')
      .describe(
        "Where the pod's own ServiceAccount token and ca.crt are (tests point it elsewhere)",
      ),
  })
  .readonly()

export type Config = z.infer<typeof configSchema>

/** How the process serves: plain HTTP (Knative, local dev) or HTTPS from certificate files (classic). */
export type ServeMode = 'http' | 'https'

/** Knative (K_SERVICE set) serves plain HTTP behind queue-proxy; otherwise HTTPS. */
export function serveMode(config: Config): ServeMode {
  return config.K_SERVICE === undefined ? 'https' : 'http'
}

/** The port to listen on: PORT, else 8080 in HTTP mode and 8443 in HTTPS mode. */
export function listenPort(config: Config, mode: ServeMode): number {
  return config.PORT ?? (mode === 'http' ? 8080 : 8443)
}

/**
 * Parses an env record. Unknown variables are ignored; every invalid one is listed in the error.
 * @example loadConfig({ PORT: '9443', INVALID_ROLE_POLICY: 'warn' })
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
): Result<Config, string> {
  const parsed = configSchema.safeParse(env)
  if (!parsed.success) return err(z.prettifyError(parsed.error))
  return ok(parsed.data)
}

/** The parts of the app's dependencies that come straight from config (`createApp({ ...appOptions(config), … })`). */
export function appOptions(config: Config) {
  return {
    settings: reviewSettings(config),
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    lookupTimeoutMs: config.LOOKUP_TIMEOUT_MS,
    mutatePathToken: config.MUTATE_PATH_TOKEN,
  }
}

/** The review settings (identity defaults and invalid-role policy) from config. */
export function reviewSettings(config: Config): ReviewSettings {
  return {
    audience: config.TOKEN_AUDIENCE,
    expirationSeconds: config.TOKEN_EXPIRATION_SECONDS,
    stsEndpoint: config.STS_ENDPOINT,
    region: config.DEFAULT_REGION,
    invalidRolePolicy: config.INVALID_ROLE_POLICY,
  }
}

/** Where the ServiceAccounts come from when no file is given: a kubeconfig, the pod's in-cluster settings, or none. */
export type ApiServerSettings =
  | { readonly kind: 'kubeconfig'; readonly paths: readonly string[] }
  | { readonly kind: 'in-cluster'; readonly settings: InClusterSettings; readonly from: string }
  | { readonly kind: 'none'; readonly problem: string; readonly fix: string }

/** What to set, for every "no API server" message. */
export const API_SERVER_FIX =
  'set KUBECONFIG to a kubeconfig file; in a pod, Kubernetes sets KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT and mounts token and ca.crt in KUBE_SERVICEACCOUNT_DIR (default /var/run/secrets/kubernetes.io/serviceaccount; automountServiceAccountToken must not be false); or set SERVICE_ACCOUNTS_FILE to read ServiceAccounts from a YAML file'

/**
 * The one source of API server settings for every lookup mode: `KUBECONFIG` when set, else the in-cluster settings
 * (`KUBERNETES_SERVICE_HOST`/`_PORT`, `KUBE_SERVICEACCOUNT_DIR`), else none — with what was tried.
 * @example apiServerSettings(config).kind // 'in-cluster' in a pod
 */
export function apiServerSettings(config: Config): ApiServerSettings {
  if (config.KUBECONFIG !== undefined) {
    return { kind: 'kubeconfig', paths: config.KUBECONFIG.split(':').filter(Boolean) }
  }
  const host = config.KUBERNETES_SERVICE_HOST
  if (host === undefined) {
    return {
      kind: 'none',
      problem: 'KUBECONFIG and KUBERNETES_SERVICE_HOST are both unset (not running in a pod?)',
      fix: API_SERVER_FIX,
    }
  }
  const port = config.KUBERNETES_SERVICE_PORT
  const dir = config.KUBE_SERVICEACCOUNT_DIR
  return {
    kind: 'in-cluster',
    settings: inClusterSettings(host, port, dir),
    from: `KUBERNETES_SERVICE_HOST=${host}, KUBERNETES_SERVICE_PORT=${port}, KUBE_SERVICEACCOUNT_DIR=${dir}`,
  }
}
