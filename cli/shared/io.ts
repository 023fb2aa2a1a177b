/**
 * What a command writes to and reads from, so commands run the same in a process and in tests.
 * @module
 */
import { readFileSync } from 'node:fs'

export interface Io {
  /** Writes to stdout (the command's result: manifests, patches, payloads). */
  out(text: string): void
  /** Writes to stderr (outcomes, warnings, hints). */
  err(text: string): void
  /** Reads a file; `-` reads stdin. */
  readFile(path: string): string
}

/** The process's own stdout/stderr/stdin. */
export function processIo(): Io {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    readFile: (path) => readFileSync(path === '-' ? 0 : path, 'utf8'),
  }
}

/** A bad command line: the message is printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** Exit codes shared by all commands. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const

/** `ns/name` → parts; a bare `name` takes `defaultNamespace`. */
export function splitRef(
  value: string,
  defaultNamespace: string,
): { namespace: string; name: string } {
  const [first, second, extra] = value.split('/')
  if (extra !== undefined || first === '' || second === '') {
    throw new UsageError(`expected <namespace>/<name> or <name>, got ${JSON.stringify(value)}`)
  }
  return second === undefined
    ? { namespace: defaultNamespace, name: first ?? '' }
    : { namespace: first ?? '', name: second }
}

/** `value` when it is one of `choices`; else a UsageError naming the flag and what it takes. */
export function oneOf<const T extends string>(
  flag: string,
  value: string,
  choices: readonly T[],
): T {
  const found = choices.find((choice) => choice === value)
  if (found === undefined) {
    throw new UsageError(`${flag} must be ${choices.join(' or ')}, got ${JSON.stringify(value)}`)
  }
  return found
}

/** Reads `KEY=VALUE` pairs into a record. */
export function parseSettings(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new UsageError(`--set expects KEY=VALUE, got ${JSON.stringify(pair)}`)
    env[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return env
}
