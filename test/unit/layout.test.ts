/**
 * The import rules of the repository's layout (CONTRIBUTING.md, "The map"): the webhook in function/ and handler.ts,
 * the operator's toolkit in cli/ (one folder per command, cli/shared/ for what commands share), and the decision
 * core that every command reuses. Imports are read by the TypeScript compiler (the `imports` of each source file:
 * `import`, `import type`, `export … from`, dynamic `import()` and `import('…')` types), not by a pattern match.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { API } from 'typescript/unstable/sync'
import { ROOT } from '../support/process.ts'

/**
 * The decision core: the one decision table (reviewPod), the patch planner, and the types and names they read.
 * It imports only itself and zod. config.ts is not in it: it builds the in-cluster client's settings too, so it
 * imports in-cluster.ts (an adapter).
 */
const CORE = [
  'function/admission.ts',
  'function/identity.ts',
  'function/kube-objects.ts',
  'function/mutate-pod.ts',
  'function/names.ts',
  'function/pod.ts',
  'function/result.ts',
  'function/review-pod.ts',
]
const CORE_PACKAGES = ['zod']
/** The webhook's composition root and HTTP edge: the toolkit reuses the decision, never the server. */
const WEBHOOK_SERVING = [
  'handler.ts',
  'function/app.ts',
  'function/server.ts',
  'function/metrics.ts',
]

/** One import of one file: where it is, what it says, and what it names (a repository path, or a package). */
interface Import {
  readonly file: string
  readonly line: number
  readonly specifier: string
  /** Repository path (forward slashes) for a relative specifier; the specifier itself for a package. */
  readonly target: string
}

type Area =
  | { readonly kind: 'root' }
  | { readonly kind: 'webhook' }
  | { readonly kind: 'cli-main' }
  | { readonly kind: 'cli-shared' }
  | { readonly kind: 'command'; readonly name: string }
  | { readonly kind: 'other' }

function areaOf(path: string): Area {
  if (path === 'handler.ts') return { kind: 'root' }
  if (path.startsWith('function/')) return { kind: 'webhook' }
  if (path === 'cli/main.ts') return { kind: 'cli-main' }
  const command = /^cli\/([^/]+)\//.exec(path)?.[1]
  if (command === 'shared') return { kind: 'cli-shared' }
  if (command !== undefined) return { kind: 'command', name: command }
  return { kind: 'other' }
}

const packageName = (specifier: string) =>
  specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]

function coreRule(i: Import): string | undefined {
  if (!CORE.includes(i.file)) return undefined
  const local = i.specifier.startsWith('.')
  if (local ? CORE.includes(i.target) : CORE_PACKAGES.includes(packageName(i.specifier) ?? ''))
    return undefined
  const what = local ? i.target : `the package ${i.specifier}`
  return (
    `the decision core (${CORE.map((f) => f.slice('function/'.length)).join(', ')}) imports only itself and ` +
    `${CORE_PACKAGES.join(', ')}; ${what} is not part of it: an adapter, the HTTP edge or I/O belongs outside ` +
    'the core, passed in by handler.ts (the composition root)'
  )
}

function cliRule(i: Import, from: Area, to: Area): string | undefined {
  if (from.kind === 'command' && to.kind === 'command' && to.name !== from.name) {
    return (
      `a command imports its own folder, cli/shared/ and function/, never another command's files ` +
      `(cli/${from.name}/ imports cli/${to.name}/): move what both need to cli/shared/`
    )
  }
  if (from.kind === 'command' && to.kind === 'cli-main') {
    return 'a command does not import cli/main.ts (the dispatcher imports the commands, not the reverse)'
  }
  if (from.kind === 'cli-shared' && (to.kind === 'command' || to.kind === 'cli-main')) {
    return 'cli/shared/ is what the commands share: it imports no command and not cli/main.ts'
  }
  if (from.kind !== 'other' && i.file.startsWith('cli/') && WEBHOOK_SERVING.includes(i.target)) {
    return (
      `the toolkit reuses the webhook's decision code, not its server: cli/ does not import ` +
      `${WEBHOOK_SERVING.join(', ')}`
    )
  }
  return undefined
}

/** Why this import breaks the layout's rules, or undefined when it keeps them. */
function ruleBroken(i: Import): string | undefined {
  const from = areaOf(i.file)
  const to: Area = i.specifier.startsWith('.') ? areaOf(i.target) : { kind: 'other' }
  if ((from.kind === 'webhook' || from.kind === 'root') && i.target.startsWith('cli/')) {
    return 'the webhook (function/, handler.ts) never imports the operator toolkit (cli/); cli/ imports function/'
  }
  if (from.kind === 'webhook' && to.kind === 'root') {
    return 'handler.ts is the composition root: nothing in function/ imports it'
  }
  return coreRule(i) ?? cliRule(i, from, to)
}

/** Files in the wrong place: cli/ holds main.ts, shared/ and one folder per command. */
function misplaced(file: string): string | undefined {
  return /^cli\/[^/]+$/.test(file) && file !== 'cli/main.ts'
    ? 'cli/ holds main.ts (the dispatcher), shared/ and one folder per command (cli/<command>/): move it into one'
    : undefined
}

/** One line per broken rule: `file:line imports 'specifier' (target): why`. */
function explain(imports: readonly Import[], files: readonly string[]): string[] {
  const lines: string[] = []
  for (const file of files) {
    const why = misplaced(file)
    if (why !== undefined) lines.push(`${file}: ${why}`)
  }
  for (const i of imports) {
    const why = ruleBroken(i)
    const target = i.target === i.specifier ? '' : ` (${i.target})`
    if (why !== undefined)
      lines.push(`${i.file}:${i.line} imports '${i.specifier}'${target}: ${why}`)
  }
  return lines
}

const toRepoPath = (absolute: string) => relative(ROOT, absolute).split(sep).join('/')

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => toRepoPath(join(entry.parentPath, entry.name)))
    .sort()
}

/** The webhook and the toolkit: every file the rules are about. */
const FILES = ['handler.ts', ...sourceFiles('function'), ...sourceFiles('cli')]

let api: API
let imports: Import[] = []
let notInProgram: string[] = []

before(() => {
  api = new API({ cwd: ROOT })
  const snapshot = api.updateSnapshot({ openProject: join(ROOT, 'tsconfig.json') })
  const program = snapshot.getProject(join(ROOT, 'tsconfig.json'))?.program
  assert.ok(program, 'the TypeScript project of tsconfig.json did not open')
  notInProgram = []
  imports = []
  for (const file of FILES) {
    const source = program.getSourceFile(join(ROOT, file))
    if (source === undefined) {
      notInProgram.push(file)
      continue
    }
    for (const node of source.imports) {
      const specifier = (node as { text?: unknown }).text
      if (typeof specifier !== 'string') continue
      const line = source.getLineAndCharacterOfPosition(node.end).line + 1
      const target = specifier.startsWith('.')
        ? toRepoPath(resolve(dirname(join(ROOT, file)), specifier))
        : specifier
      imports.push({ file, line, specifier, target })
    }
  }
})
after(() => api?.close())

describe('the layout: who may import what (CONTRIBUTING.md, "The map")', () => {
  test('every file of function/, cli/ and handler.ts is in the TypeScript project (tsconfig.json include)', () => {
    assert.deepEqual(notInProgram, [], 'add their folder to tsconfig.json "include"')
    assert.ok(FILES.length > 20, `found only ${FILES.length} files`)
  })

  test('the import reader sees type-only imports and dynamic import()', () => {
    const targets = (file: string) => imports.filter((i) => i.file === file).map((i) => i.target)
    // review-pod.ts has only `import type … from './admission.ts'`; handler.ts has only `await import(…)` of
    // kube-client-node.ts: if the reader missed either form, the rules below would pass on half the imports.
    assert.ok(targets('function/review-pod.ts').includes('function/admission.ts'))
    assert.ok(targets('handler.ts').includes('function/kube-client-node.ts'))
    assert.ok(targets('cli/main.ts').includes('cli/doctor/doctor.ts'))
    assert.ok(imports.length > 100, `read only ${imports.length} imports`)
  })

  test('the decision core is where the rules say it is', () => {
    for (const file of CORE)
      assert.ok(FILES.includes(file), `${file} is in CORE but does not exist`)
    for (const file of WEBHOOK_SERVING) {
      assert.ok(FILES.includes(file), `${file} is in WEBHOOK_SERVING but does not exist`)
    }
  })

  test('no import breaks a rule', () => {
    const broken = explain(imports, FILES)
    assert.deepEqual(
      broken,
      [],
      `the layout's import rules are broken (CONTRIBUTING.md, "The map"):\n  ${broken.join('\n  ')}`,
    )
  })
})

describe('each rule fails on a violation', () => {
  const at = (file: string, specifier: string, target: string): Import => ({
    file,
    line: 7,
    specifier,
    target,
  })
  const cases: [string, Import, RegExp][] = [
    [
      'a command importing another command',
      at('cli/audit/audit.ts', '../doctor/context.ts', 'cli/doctor/context.ts'),
      /never another command's files \(cli\/audit\/ imports cli\/doctor\/\)/,
    ],
    [
      'a command importing the dispatcher',
      at('cli/audit/audit.ts', '../main.ts', 'cli/main.ts'),
      /does not import cli\/main\.ts/,
    ],
    [
      'cli/shared/ importing a command',
      at('cli/shared/kube.ts', '../mutate/mutate.ts', 'cli/mutate/mutate.ts'),
      /imports no command/,
    ],
    [
      'function/ importing cli/',
      at('function/app.ts', '../cli/shared/io.ts', 'cli/shared/io.ts'),
      /never imports the operator toolkit/,
    ],
    [
      'handler.ts importing cli/',
      at('handler.ts', './cli/main.ts', 'cli/main.ts'),
      /never imports the operator toolkit/,
    ],
    [
      'function/ importing the composition root',
      at('function/server.ts', '../handler.ts', 'handler.ts'),
      /composition root/,
    ],
    [
      'the decision core importing an adapter',
      at('function/review-pod.ts', './in-cluster.ts', 'function/in-cluster.ts'),
      /decision core .* function\/in-cluster\.ts is not part of it/,
    ],
    [
      'the decision core importing node:https',
      at('function/mutate-pod.ts', 'node:https', 'node:https'),
      /the package node:https is not part of it/,
    ],
    [
      'the decision core importing @kubernetes/client-node',
      at('function/identity.ts', '@kubernetes/client-node', '@kubernetes/client-node'),
      /the package @kubernetes\/client-node is not part of it/,
    ],
    [
      'the toolkit importing the webhook server',
      at('cli/doctor/tls.ts', '../../function/server.ts', 'function/server.ts'),
      /not its server/,
    ],
  ]
  for (const [name, violation, message] of cases) {
    test(name, () => {
      const [line, ...rest] = explain([violation], [])
      assert.equal(rest.length, 0)
      assert.match(line ?? '', message)
      assert.ok(line?.startsWith(`${violation.file}:7 imports '${violation.specifier}'`), line)
    })
  }

  test('allowed imports pass: a command to cli/shared/ and function/, the core to zod, scripts to cli/shared/', () => {
    const allowed = [
      at('cli/audit/audit.ts', '../shared/pod-scan.ts', 'cli/shared/pod-scan.ts'),
      at('cli/audit/audit.ts', './heal.ts', 'cli/audit/heal.ts'),
      at('cli/mutate/mutate.ts', '../../function/review-pod.ts', 'function/review-pod.ts'),
      at('cli/main.ts', './doctor/doctor.ts', 'cli/doctor/doctor.ts'),
      at('function/review-pod.ts', './mutate-pod.ts', 'function/mutate-pod.ts'),
      at('function/admission.ts', 'zod', 'zod'),
      at('function/server.ts', 'node:https', 'node:https'),
      at('scripts/sync-version.ts', '../cli/shared/io.ts', 'cli/shared/io.ts'),
    ]
    assert.deepEqual(explain(allowed, []), [])
  })

  test('a loose file directly in cli/ is reported', () => {
    assert.deepEqual(explain([], ['cli/main.ts', 'cli/helpers.ts']), [
      'cli/helpers.ts: cli/ holds main.ts (the dispatcher), shared/ and one folder per command (cli/<command>/): move it into one',
    ])
  })
})
