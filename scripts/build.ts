/**
 * Bundles the server into `dist/handler.js` (plus source maps), every dependency inlined: a cold start loads one
 * file instead of resolving modules one by one. Code only some modes need (@kubernetes/client-node, for kubeconfigs
 * and watch mode) goes into `dist/chunks/`, loaded on demand.
 * The image and `npm start` run exactly this file.
 *
 * The command-line tool (bin/irsa-webhook.ts) becomes `dist/cli.js`, one self-contained file from a build of its
 * own, so the server's bundle and chunks stay exactly what they are without it. The image ships both: the audit
 * CronJob runs `node dist/cli.js audit …` in the webhook's image.
 * @module
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { type BuildOptions, build } from 'esbuild'
import { VERSION } from '../function/version.ts'

const outdir = new URL('../dist/', import.meta.url)

/** What both bundles share. */
const common = {
  outdir: outdir.pathname,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: true,
  minifySyntax: true,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  // The release version (function/version.ts), inlined: the bundle needs no package.json at run time.
  define: { IRSA_WEBHOOK_VERSION: JSON.stringify(VERSION) },
  // Some dependencies are CommonJS and call require() for Node built-ins; give the ESM bundle a require.
  banner: {
    js: "import { createRequire as __irsaCreateRequire } from 'node:module'; const require = __irsaCreateRequire(import.meta.url);",
  },
} satisfies BuildOptions

/** The server bundle's esbuild options (also used by test/bench/profile-start.ts for the metafile of the same build). */
export const buildOptions = {
  ...common,
  entryPoints: [{ in: new URL('../handler.ts', import.meta.url).pathname, out: 'handler' }],
  // @kubernetes/client-node is imported dynamically (kubeconfig and watch modes only): keep it in its own chunk
  // so the default in-cluster path never loads it.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
} satisfies BuildOptions

if (import.meta.main) {
  rmSync(outdir, { recursive: true, force: true })
  mkdirSync(outdir, { recursive: true })
  const started = performance.now()
  const [server, cli] = await Promise.all([
    build(buildOptions),
    // No splitting: its dynamic imports are inlined, so the CLI is one file and shares no chunk with the server.
    build({
      ...common,
      entryPoints: [
        { in: new URL('../bin/irsa-webhook.ts', import.meta.url).pathname, out: 'cli' },
      ],
    }),
  ])
  // The bundle is ESM; this marks dist/ as such without needing the project's package.json at run time.
  writeFileSync(new URL('package.json', outdir), `${JSON.stringify({ type: 'module' })}\n`)
  const mib = (result: typeof server) =>
    (
      Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0) /
      1024 /
      1024
    ).toFixed(1)
  console.log(
    `built ${VERSION}: dist/handler.js (${mib(server)} MiB with map) and dist/cli.js (${mib(cli)} MiB with map) in ${Math.round(performance.now() - started)} ms`,
  )
}
