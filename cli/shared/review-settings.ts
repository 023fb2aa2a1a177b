/**
 * The webhook's review settings from `--set KEY=VALUE` pairs, read by the webhook's own config parser
 * (`loadConfig`, `reviewSettings`), so every command decides with the settings the webhook would have.
 * @module
 */
import { loadConfig, reviewSettings } from '../../function/config.ts'
import type { ReviewSettings } from '../../function/review-pod.ts'
import { parseSettings, UsageError } from './io.ts'

/** The configuration variables a review reads (`reviewSettings`); any other key is a typo to report. */
const SETTABLE = [
  'STS_ENDPOINT',
  'TOKEN_AUDIENCE',
  'TOKEN_EXPIRATION_SECONDS',
  'DEFAULT_REGION',
  'INVALID_ROLE_POLICY',
]

/** The review settings from `--set KEY=VALUE` pairs (the webhook's config variables a review reads). */
export function reviewSettingsFrom(pairs: readonly string[]): ReviewSettings {
  const settings = parseSettings(pairs)
  const unknown = Object.keys(settings).filter((key) => !SETTABLE.includes(key))
  if (unknown.length > 0) {
    throw new UsageError(`--set takes ${SETTABLE.join(', ')}; got ${unknown.join(', ')}`)
  }
  const config = loadConfig(settings)
  if (!config.ok) throw new UsageError(`--set: ${config.error}`)
  return reviewSettings(config.value)
}
