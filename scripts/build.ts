/**
 * Bundles the server into `dist/handler.js` (plus source maps), every dependency inlined: a cold start loads one
 * file instead of resolving modules one by one. Code only some modes need (@kubernetes/client-node, for kubeconfigs
 * and watch mode) goes into `dist/chunks/`, loaded on demand.
 * The image and `npm start` run exactly this file.
 * @module
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { type BuildOptions, build } from 'esbuild'

const outdir = new URL('../dist/', import.meta.url)

/** The bundle's esbuild options (also used by test/bench/profile-start.ts for the metafile of the same build). */
export const buildOptions = {
  entryPoints: [new URL('../handler.ts', import.meta.url).pathname],
  outdir: outdir.pathname,
  entryNames: '[name]',
  // @kubernetes/client-node is imported dynamically (kubeconfig and watch modes only): keep it in its own chunk so
  // the default in-cluster path never loads it.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: true,
  minifySyntax: true,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  // Some dependencies are CommonJS and call require() for Node built-ins; give the ESM bundle a require.
  banner: {
    js: "import { createRequire as __irsaCreateRequire } from 'node:module'; const require = __irsaCreateRequire(import.meta.url);",
  },
} satisfies BuildOptions

if (import.meta.main) {
  rmSync(outdir, { recursive: true, force: true })
  mkdirSync(outdir, { recursive: true })
  const started = performance.now()
  const result = await build(buildOptions)
  // The bundle is ESM; this marks dist/ as such without needing the project's package.json at run time.
  writeFileSync(new URL('package.json', outdir), `${JSON.stringify({ type: 'module' })}\n`)
  const bytes = Object.values(result.metafile.outputs).reduce(
    (sum, output) => sum + output.bytes,
    0,
  )
  console.log(
    `built dist/handler.js in ${Math.round(performance.now() - started)} ms (${(bytes / 1024 / 1024).toFixed(1)} MiB with map)`,
  )
}
