/**
 * How the image starts ours, so the bench starts it the same way: the node flags of package.json's `start` script
 * (the Dockerfile CMD is the same command; a test enforces it), read at run time so there is one source of truth,
 * and Node's compile cache for the bundle, warmed once per run with `scripts/warm-compile-cache.ts` as the image
 * build does (`NODE_COMPILE_CACHE` at run time).
 * @module
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from '../support/process.ts'

/** A server program: `node <nodeArgs> <entry>`. */
export interface Program {
  readonly entry: string
  readonly nodeArgs: readonly string[]
}

/** The node flags between `node` and `entry` in package.json's `start` script (throws if it is not that shape). */
export function startFlags(entry: string): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>
  }
  const start = pkg.scripts?.['start'] ?? ''
  const words = start.trim().split(/\s+/)
  if (/["'`$;&|<>\\]/.test(start) || words[0] !== 'node' || words.at(-1) !== entry) {
    throw new Error(`package.json "start" is not \`node [flags] ${entry}\`: ${start}`)
  }
  return words.slice(1, -1)
}

export interface CompileCache {
  readonly dir: string
  /** One line for the bench header. */
  readonly summary: string
  close(): void
}

/** Whether `node <flags> <entry>` accepts the cache for the entry (the entry stops at its invalid PORT). */
function accepted(program: Program, dir: string): boolean {
  const run = spawnSync(process.execPath, [...program.nodeArgs, program.entry], {
    cwd: ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      PORT: 'warm-up',
      NODE_COMPILE_CACHE: dir,
      NODE_DEBUG_NATIVE: 'COMPILE_CACHE',
    },
    encoding: 'utf8',
    timeout: 30_000,
  })
  const name = program.entry.replace(/[.]/g, '[.]')
  return new RegExp(`V8 code cache for ESM file://\\S*/${name} was accepted`).test(run.stderr)
}

/**
 * Writes Node's compile cache for `dist/` (or another build's directory) into a fresh temp dir (`node scripts/warm-compile-cache.ts <abs dist>`,
 * which exits 1 on purpose after writing it), then checks that ours, started with its flags, accepts it.
 */
export function warmCompileCache(program: Program, dist = join(ROOT, 'dist')): CompileCache {
  const dir = mkdtempSync(join(tmpdir(), 'irsa-bench-compile-cache-'))
  const warm = spawnSync(process.execPath, ['scripts/warm-compile-cache.ts', dist], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', NODE_COMPILE_CACHE: dir },
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (!/compile cache written to/.test(warm.stdout)) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(
      `warming the compile cache failed (${warm.status}): ${warm.stdout}${warm.stderr}`,
    )
  }
  const entries = readdirSync(dir, { recursive: true }).length
  const ok = accepted(program, dir)
  return {
    dir,
    summary: `compile cache: on, NODE_COMPILE_CACHE=${dir} (${entries} entries, warmed by scripts/warm-compile-cache.ts; ${program.entry} ${ok ? 'accepted' : 'NOT accepted'} with ours' flags)`,
    close: () => rmSync(dir, { recursive: true, force: true }),
  }
}
