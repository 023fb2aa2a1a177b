/**
 * The lookup deadline. kube-apiserver appends `?timeout=<webhook timeoutSeconds>s` to every webhook call; the
 * ServiceAccount lookup must end early enough to leave time for the answer. Pure.
 * @module
 */

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Parses a Go duration as kube-apiserver writes it (`10s`, `1m30s`, `500ms`); undefined when absent or invalid. */
export function parseGoDuration(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(raw)) return undefined
  let total = 0
  for (const [, amount, , unit] of raw.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * (UNITS[unit ?? 's'] ?? 1000)
  }
  return total
}

/**
 * Milliseconds the lookup may take: the configured cap, shortened so that a 20% margin (at least 250 ms) of the
 * apiserver's timeout remains for the answer; never below 50 ms.
 */
export function lookupBudgetMs(timeoutParam: string | undefined, capMs: number): number {
  const timeoutMs = parseGoDuration(timeoutParam)
  if (timeoutMs === undefined) return capMs
  const margin = Math.max(250, timeoutMs * 0.2)
  return Math.max(50, Math.min(capMs, timeoutMs - margin))
}
