/**
 * Fills Node's compile cache (V8 code cache) for the built server, so a cold start skips compiling the bundle.
 * Run at image build time, as the runtime user, against the same `dist/` path and Node binary the image runs:
 *   NODE_COMPILE_CACHE=/app/.compile-cache node scripts/warm-compile-cache.ts /app/dist
 * The cache is keyed by Node version, user id and file path; at run time it is only read (a read-only root
 * filesystem is fine).
 * @module
 */
import { readdirSync } from 'node:fs'
import { flushCompileCache, getCompileCacheDir } from 'node:module'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const dist = resolve(process.argv[2] ?? 'dist')
if (getCompileCacheDir() === undefined) {
  console.error('NODE_COMPILE_CACHE is not set (or the cache directory is not writable)')
  process.exit(1)
}
// Chunks first: importing only defines their modules.
for (const name of readdirSync(join(dist, 'chunks'))) {
  if (name.endsWith('.js')) await import(pathToFileURL(join(dist, 'chunks', name)).href)
}
flushCompileCache()
// The entry compiles everything it imports statically, then stops at config validation (PORT is invalid on
// purpose) before listening; its exit code is that of the invalid config.
process.env['PORT'] = 'warm-up'
process.on('exit', () => {
  flushCompileCache()
  console.log(`compile cache written to ${getCompileCacheDir()}`)
})
await import(pathToFileURL(join(dist, 'handler.js')).href)
