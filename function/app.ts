/**
 * The HTTP adapter: one Hono app serving `POST /mutate`, health, readiness and metrics. No module state: everything
 * it uses arrives in `AppDeps`, so tests build it with fakes and `app.request()`.
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { type AdmissionRequest, admissionResponse, parseAdmissionReview } from './admission.ts'
import type { Metrics } from './metrics.ts'
import { ROUTES } from './names.ts'
import {
  type Decision,
  type ReviewSettings,
  reviewPod,
  type ServiceAccountSource,
} from './review-pod.ts'
import { lookupBudgetMs } from './timeout.ts'

/** The subset of a pino logger the app uses. */
export interface Logger {
  info(fields: object, message?: string): void
  warn(fields: object, message?: string): void
  error(fields: object, message?: string): void
  /** pino's; when present, decision fields are only built if `info` lines are written. */
  isLevelEnabled?(level: string): boolean
}

export interface AppDeps {
  readonly serviceAccounts: ServiceAccountSource
  readonly settings: ReviewSettings
  readonly logger: Logger
  readonly metrics: Metrics
  readonly bodyLimitBytes: number
  /** Upper bound for the ServiceAccount lookup; the apiserver's `?timeout=` can only shorten it. */
  readonly lookupTimeoutMs: number
  /** When set, only `POST /mutate/<token>` mutates. */
  readonly mutatePathToken?: string | undefined
  /** Readiness: config and clients are up (and, in watch mode, the cache has synced). */
  readonly ready: () => boolean
  /** Why `ready()` is false, for /readyz's body (`not ready: <reason>`). */
  readonly notReadyReason?: () => string | undefined
}

/** The `reason` kube-apiserver expects with each status code (k8s.io/apimachinery pkg/apis/meta/v1 types.go). */
const STATUS_REASONS = {
  400: 'BadRequest',
  404: 'NotFound',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  500: 'InternalError',
} as const

type ProblemStatus = keyof typeof STATUS_REASONS

/**
 * Answers `code` with a `metav1.Status` failure body, the only error form kube-apiserver reads: its webhook client
 * (client-go rest/request.go `Result.Error`) decodes a Status and reports `failed calling webhook "…": failed to
 * call webhook: <message>` (apiserver pkg/admission/plugin/webhook/mutating/dispatcher.go,
 * pkg/util/webhook/error.go); any other body becomes `an error on the server ("unknown") has prevented the request
 * from succeeding`.
 */
const problem = (c: Context, code: ProblemStatus, message: string) =>
  c.json(
    {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason: STATUS_REASONS[code],
      code,
    },
    code,
  )

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

function logFields(request: AdmissionRequest, decision: Decision, started: number): object {
  const object = request.object as
    | { metadata?: { name?: string; generateName?: string } }
    | undefined
  return {
    uid: request.uid,
    namespace: request.namespace,
    pod: request.name ?? object?.metadata?.name,
    generateName: object?.metadata?.generateName,
    serviceAccount: decision.serviceAccount,
    outcome: decision.outcome,
    dryRun: request.dryRun === true,
    ms: Math.round((performance.now() - started) * 100) / 100,
    ...(decision.kind === 'answer' && decision.answer.warnings?.length
      ? { warnings: decision.answer.warnings }
      : {}),
    ...(decision.kind === 'error' ? { error: decision.message } : {}),
  }
}

/**
 * Runs `work` with a deadline signal that is armed only if `work` asks for it (a cache hit never does), and clears
 * the timer as soon as the work is done. A result that is not a promise is returned as is, with no promise or
 * microtask added. (`AbortSignal.timeout` would keep every review's timer, signal and listeners alive until it
 * fires, then dispatch an abort for a review answered long ago.)
 */
function withDeadline<T>(
  ms: number,
  work: (signal: () => AbortSignal) => T | Promise<T>,
): T | Promise<T> {
  let controller: AbortController | undefined
  let timer: NodeJS.Timeout | undefined
  const signal = () => {
    if (controller === undefined) {
      const armed = new AbortController()
      timer = setTimeout(
        () => armed.abort(new DOMException('deadline exceeded', 'TimeoutError')),
        ms,
      )
      controller = armed
    }
    return controller.signal
  }
  let result: T | Promise<T>
  try {
    result = work(signal)
  } catch (error) {
    clearTimeout(timer)
    throw error
  }
  if (!(result instanceof Promise)) {
    clearTimeout(timer)
    return result
  }
  return result.finally(() => clearTimeout(timer))
}

/** Creates the webhook app. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono()
  const { metrics, logger } = deps
  // kube-apiserver sends the same `?timeout=` on every call of a webhook: compute its budget once per value.
  let lastTimeout: string | undefined
  let lastBudget = deps.lookupTimeoutMs
  const budgetFor = (timeout: string | undefined) => {
    if (timeout !== lastTimeout) {
      lastTimeout = timeout
      lastBudget = lookupBudgetMs(timeout, deps.lookupTimeoutMs)
    }
    return lastBudget
  }

  const mutate = async (c: Context): Promise<Response> => {
    const started = performance.now()
    const type = c.req.header('content-type') ?? ''
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      return problem(c, 415, `Content-Type must be application/json; got ${JSON.stringify(type)}`)
    }
    let body: unknown
    try {
      body = JSON.parse(await c.req.text())
    } catch (error) {
      return problem(c, 400, `body is not valid JSON: ${(error as Error).message.slice(0, 120)}`)
    }
    const parsed = parseAdmissionReview(body)
    if (!parsed.ok) return problem(c, 400, parsed.error)
    const request = parsed.value
    const pending = withDeadline(budgetFor(c.req.query('timeout')), (signal) =>
      reviewPod(request, {
        serviceAccounts: deps.serviceAccounts,
        settings: deps.settings,
        signal,
      }),
    )
    const decision = pending instanceof Promise ? await pending : pending
    metrics.recordDecision(decision.outcome, (performance.now() - started) / 1000)
    if (decision.kind === 'error') {
      logger.warn(logFields(request, decision, started), 'admission review failed')
      return problem(c, decision.status, decision.message)
    }
    if (logger.isLevelEnabled?.('info') ?? true) {
      logger.info(logFields(request, decision, started), 'admission review')
    }
    return c.json(admissionResponse(request.uid, decision.answer))
  }

  const tooLarge = (c: Context) =>
    problem(c, 413, `body exceeds the limit of ${deps.bodyLimitBytes} bytes`)
  const streamingLimit = bodyLimit({ maxSize: deps.bodyLimitBytes, onError: tooLarge })
  // The size check is part of the one route handler rather than a middleware, so Hono dispatches the route
  // directly (no compose chain per review). With a Content-Length (kube-apiserver always sends one) the header
  // decides and the body is then read straight from the socket by @hono/node-server; Hono's bodyLimit, which reads
  // `c.req.raw.body` (a whole web Request and stream per call), only handles chunked bodies.
  const limited = async (c: Context): Promise<Response> => {
    const length = c.req.header('content-length')
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      return Number(length) > deps.bodyLimitBytes ? tooLarge(c) : mutate(c)
    }
    let answer: Response | undefined
    const refused = await streamingLimit(c, async () => {
      answer = await mutate(c)
    })
    return refused ?? answer ?? problem(c, 500, 'internal error')
  }
  const token = deps.mutatePathToken
  if (token === undefined) {
    app.post(ROUTES.mutate, limited)
  } else {
    app.post(`${ROUTES.mutate}/:token`, async (c) =>
      sameToken(c.req.param('token'), token) ? limited(c) : problem(c, 404, 'not found'),
    )
  }

  const ok = (c: Context) => c.text('ok')
  app.get(ROUTES.health, ok)
  app.get(ROUTES.healthz, ok)
  app.get(ROUTES.readyz, (c) => {
    if (deps.ready()) return c.text('ready')
    const reason = deps.notReadyReason?.()
    return c.text(reason === undefined ? 'not ready' : `not ready: ${reason}`, 503)
  })
  app.get(ROUTES.metrics, async (c) => {
    c.header('Content-Type', metrics.registry.contentType)
    return c.body(await metrics.registry.metrics())
  })
  app.notFound((c) => problem(c, 404, `no route for ${c.req.method} ${c.req.path}`))
  app.onError((error, c) => {
    logger.error({ error: error.message, stack: error.stack }, 'unhandled error')
    return problem(c, 500, 'internal error')
  })
  return app
}
