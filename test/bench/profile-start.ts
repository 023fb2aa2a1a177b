/**
 * `npm run profile:start`: where a cold start's time goes, module by module. Starts ours as the image runs it
 * (package.json `start` flags, warmed NODE_COMPILE_CACHE, Knative HTTP mode, in-cluster lookup against the bench's
 * fake kube-apiserver) with `--cpu-prof --cpu-prof-interval 100`, sends one review as soon as it listens, stops it
 * with SIGTERM once the answer (with a patch) is in, and prints:
 *  - the profile's phases (module loading and linking, evaluation, the rest of start-up and the first review, GC);
 *  - CPU time per owner: each sample goes to the innermost frame in the bundle, mapped through the bundle's source
 *    map to its package (or our source file), so a package is charged for the built-ins it makes Node load
 *    (e.g. @hono/node-server for undici, through `global.Request`); samples with no bundle frame go to the
 *    outermost built-in module being loaded (e.g. undici when an ESM import of node:http reads its lazy exports),
 *    else to the leaf frame (the module loader's own work: reading, compiling, linking);
 *  - the esbuild metafile: bytes per package in the files loaded at start (dist/handler.js and its static chunks).
 * The profiler slows JavaScript down more than native work: compare shares, not absolute times, with the bench.
 * Options: --keep DIR (copy the .cpuprofile there), --top N (rows, default 25).
 * @module
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { buildOptions } from '../../scripts/build.ts'
import { freePort } from '../support/process.ts'
import { patchOf, pinSelf, post, SERVER_CPU, spawnNode } from './child.ts'
import { buildPayloads } from './payloads.ts'
import { machineLines } from './report.ts'
import { commandLines, ensureBuild, OURS, oursEnv, startEnvironment } from './setup.ts'

const { values } = parseArgs({
  options: { keep: { type: 'string' }, top: { type: 'string', default: '25' } },
})
const TOP = Number(values.top)

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: number[]
}
interface Profile {
  readonly nodes: ProfileNode[]
  readonly samples: number[]
  readonly timeDeltas: number[]
}

/** The package (`node_modules/<name>`) or project file a bundled source path belongs to. */
function ownerOfSource(source: string): string {
  const at = source.lastIndexOf('node_modules/')
  if (at < 0) return source.replace(/^(\.\.\/)+/, '')
  const [scope = '', name = ''] = source.slice(at + 'node_modules/'.length).split('/')
  return scope.startsWith('@') ? `${scope}/${name}` : scope
}

function analyse(profile: Profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id)
  const maps = new Map<string, SourceMap | undefined>()
  const bundleOwner = (frame: CallFrame): string | undefined => {
    if (!frame.url.startsWith('file://') || !frame.url.includes('/dist/')) return undefined
    if (!maps.has(frame.url)) {
      const file = `${new URL(frame.url).pathname}.map`
      maps.set(frame.url, new SourceMap(JSON.parse(readFileSync(file, 'utf8'))))
    }
    const entry = maps.get(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber)
    const source = entry !== undefined && 'originalSource' in entry ? entry.originalSource : ''
    // Unmapped code is esbuild's runtime helpers (__commonJS, __export, ...).
    return source ? ownerOfSource(source) : 'esbuild runtime helpers'
  }
  /** Walks up from a sample: the first bundle owner, else the outermost built-in module being loaded. */
  const walk = (id: number): { owner?: string; builtin?: string } => {
    let builtin: string | undefined
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame
      if (frame === undefined) break
      const owner = bundleOwner(frame)
      if (owner !== undefined) return { owner }
      // A built-in module's top-level function, called by Node's internal loader.
      const caller = byId.get(parent.get(at) ?? -1)?.callFrame
      if (caller?.functionName === 'compileForInternalLoader') builtin = frame.url
    }
    return builtin === undefined ? {} : { builtin }
  }
  const owners = new Map<number, string>()
  const ownerOf = (id: number): string => {
    const known = owners.get(id)
    if (known !== undefined) return known
    const { owner, builtin } = walk(id)
    const leaf = byId.get(id)?.callFrame
    const result =
      owner ??
      (builtin !== undefined
        ? `built-in ${builtin} (loading)`
        : leaf?.functionName || '(anonymous)')
    owners.set(id, result)
    return result
  }
  // Phases: the root's children (run_main_module = resolve, load, compile and link; the `run` of the module job =
  // top-level evaluation; processTicksAndRejections = async start-up, listen and the first review).
  const inclusive = new Map<number, number>()
  const self = new Map<number, number>()
  const byOwner = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, index) => {
    const ms = (profile.timeDeltas[index] ?? 0) / 1000
    total += ms
    self.set(id, (self.get(id) ?? 0) + ms)
    byOwner.set(ownerOf(id), (byOwner.get(ownerOf(id)) ?? 0) + ms)
  })
  const sum = (id: number): number => {
    const node = byId.get(id)
    const value = (self.get(id) ?? 0) + (node?.children ?? []).reduce((a, c) => a + sum(c), 0)
    inclusive.set(id, value)
    return value
  }
  const root = profile.nodes[0]
  if (root !== undefined) sum(root.id)
  const phases = new Map<string, number>()
  for (const child of root?.children ?? []) {
    const frame = byId.get(child)?.callFrame
    const name = frame?.url
      ? `${frame.functionName || '(anonymous)'} (${basename(frame.url)})`
      : (frame?.functionName ?? '?')
    phases.set(name, (phases.get(name) ?? 0) + (inclusive.get(child) ?? 0))
  }
  return { total, phases, byOwner }
}

/** Bytes per package in the outputs a start loads: dist/handler.js and the chunks it imports statically. */
async function bytesAtStart(): Promise<Map<string, number>> {
  const result = await build({ ...buildOptions, write: false })
  const outputs = result.metafile?.outputs ?? {}
  const entry = Object.keys(outputs).find((name) => name.endsWith('dist/handler.js'))
  const loaded = new Set<string>()
  const visit = (name: string) => {
    if (loaded.has(name)) return
    loaded.add(name)
    for (const imported of outputs[name]?.imports ?? []) {
      if (imported.kind === 'import-statement' && !imported.external) visit(imported.path)
    }
  }
  if (entry !== undefined) visit(entry)
  const bytes = new Map<string, number>()
  for (const name of loaded) {
    for (const [input, { bytesInOutput }] of Object.entries(outputs[name]?.inputs ?? {})) {
      const owner = ownerOfSource(input)
      bytes.set(owner, (bytes.get(owner) ?? 0) + bytesInOutput)
    }
  }
  return bytes
}

const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1])

pinSelf()
for (const line of machineLines()) console.log(line)
console.log(ensureBuild())
const env = await startEnvironment()
const dir = mkdtempSync(join(tmpdir(), 'irsa-profile-'))
try {
  for (const line of commandLines(env)) console.log(line)
  const port = await freePort()
  const flags = ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', dir]
  console.log(
    `profiled: node ${[...flags, ...OURS.nodeArgs, OURS.entry].join(' ')} (Knative HTTP, in-cluster)`,
  )
  const vars = oursEnv(env, { scheme: 'http', ttlSeconds: 10, port })
  const server = spawnNode(OURS.entry, vars, SERVER_CPU, [...flags, ...OURS.nodeArgs])
  const url = `http://127.0.0.1:${port}/mutate?timeout=10s`
  const body = buildPayloads().small.body
  for (let answered = false; !answered; ) {
    if (performance.now() - server.spawnedAt > 20_000)
      throw new Error(`no answer: ${server.stderr()}`)
    answered = await post(url, body).then(
      (answer) => patchOf(answer).length > 0,
      () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2)),
    )
  }
  console.log(
    `spawn → first 200 with a patch under the profiler: ${(performance.now() - server.spawnedAt).toFixed(0)} ms`,
  )
  server.child.kill('SIGTERM')
  await server.exit
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error(`no profile written: ${server.stderr()}`)
  if (values.keep !== undefined) copyFileSync(join(dir, file), join(values.keep, file))
  const { total, phases, byOwner } = analyse(
    JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile,
  )
  const row = (ms: number, name: string) =>
    `${ms.toFixed(1).padStart(7)} ms ${((100 * ms) / total).toFixed(1).padStart(5)} %  ${name}`
  console.log(`\nprofile: ${total.toFixed(1)} ms sampled, from process start to SIGTERM`)
  console.log('phases (inclusive):')
  for (const [name, ms] of sorted(phases)) if (ms >= 1) console.log(row(ms, name))
  console.log(`CPU time by owner (top ${TOP}):`)
  for (const [name, ms] of sorted(byOwner).slice(0, TOP)) console.log(row(ms, name))
  const bytes = await bytesAtStart()
  const all = [...bytes.values()].reduce((a, b) => a + b, 0)
  console.log(
    `\nbytes loaded at start (esbuild metafile, dist/handler.js + static chunks): ${all} in all`,
  )
  for (const [name, size] of sorted(bytes).slice(0, TOP)) {
    console.log(
      `${String(size).padStart(9)} B ${((100 * size) / all).toFixed(1).padStart(5)} %  ${name}`,
    )
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
  await env.close()
}
