/**
 * Runs the real webhook app in process (no sockets) with in-memory ServiceAccounts, and applies the patch it
 * returns with a real RFC 6902 library (fast-json-patch), so tests see exactly what the apiserver would admit.
 * @module
 */

import assert from 'node:assert/strict'
import type { Operation } from 'fast-json-patch'
import fastJsonPatch from 'fast-json-patch'
import { createApp } from '../../function/app.ts'
import { appOptions, loadConfig } from '../../function/config.ts'
import { createMetrics } from '../../function/metrics.ts'
import type { ServiceAccountSource } from '../../function/review-pod.ts'
import { createStaticServiceAccountSource } from '../../function/service-accounts.ts'

/** A logger that keeps lines in memory. */
export function memoryLogger() {
  const lines: { level: string; fields: object; message?: string | undefined }[] = []
  const at = (level: string) => (fields: object, message?: string) => {
    lines.push({ level, fields, message })
  }
  return { lines, info: at('info'), warn: at('warn'), error: at('error') }
}

/**
 * Builds the app from ServiceAccount objects (or any ServiceAccountSource) and an env record (webhook config).
 */
export function createTestApp(
  serviceAccounts: readonly object[] | ServiceAccountSource,
  env: Record<string, string> = {},
  ready: () => boolean = () => true,
) {
  const config = loadConfig(env)
  if (!config.ok) throw new Error(config.error)
  const logger = memoryLogger()
  const metrics = createMetrics()
  const app = createApp({
    ...appOptions(config.value),
    serviceAccounts:
      'get' in serviceAccounts
        ? serviceAccounts
        : createStaticServiceAccountSource(serviceAccounts),
    logger,
    metrics,
    ready,
  })
  return { app, logger, metrics }
}

/** Decodes a response's base64 JSONPatch (empty when there is none). */
export function decodePatch(response: { patch?: string }): Operation[] {
  if (response.patch === undefined) return []
  return JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[]
}

/** Applies a JSON Patch to a deep copy of `document`, validating each operation (throws if it cannot apply). */
function applyPatch<T>(document: T, patch: readonly Operation[]): T {
  const copy = structuredClone(document)
  return fastJsonPatch.applyPatch(copy, [...patch], true, true).newDocument
}

/**
 * POSTs `review` to the in-process app and returns the HTTP status, the body, the decoded patch and
 * `request.object` with that patch applied.
 */
export async function admit(
  review: unknown,
  serviceAccounts: readonly object[],
  env: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: test helper returns wire JSON
): Promise<{ status: number; body: any; patch: Operation[]; mutatedPod: any }> {
  const { app } = createTestApp(serviceAccounts, env)
  const response = await app.request('/mutate?timeout=10s', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(review),
  })
  // biome-ignore lint/suspicious/noExplicitAny: wire JSON
  const body: any = await response.json()
  const patch = response.status === 200 ? decodePatch(body.response) : []
  const object = (review as { request?: { object?: unknown } }).request?.object
  return { status: response.status, body, patch, mutatedPod: applyPatch(object, patch) }
}

/**
 * Asserts that `body` is exactly a `metav1.Status` failure as kube-apiserver reads and writes it (apimachinery
 * pkg/apis/meta/v1 types.go `Status`): kind, apiVersion, empty metadata, status Failure, `reason`, `code`, a message
 * equal to (string) or matching (RegExp) `message`, and `details` only when given. Returns the message.
 */
export function assertFailureStatus(
  body: unknown,
  code: number,
  reason: string,
  message: RegExp | string,
  details?: object,
): string {
  const text = (body as { message?: unknown } | null)?.message
  assert.equal(typeof text, 'string', `no message in ${JSON.stringify(body)}`)
  if (typeof message === 'string') assert.equal(text, message)
  else assert.match(text as string, message)
  assert.deepEqual(body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: text,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  })
  return text as string
}
