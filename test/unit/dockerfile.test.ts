/**
 * The Dockerfile's stage structure, read with dockerfile-ast: a multi-arch build (`docker buildx build --platform
 * linux/amd64,linux/arm64`, as .github/workflows/release.yml runs it) builds the bundle once on the build machine
 * and takes the Node binary and the compile cache from the target platform; the OCI labels carry the release.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import {
  type Copy,
  DockerfileParser,
  type From,
  type Instruction,
  type Label,
} from 'dockerfile-ast'
import { ROOT } from '../support/process.ts'

const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  license: string
}

interface Stage {
  readonly from: From
  readonly instructions: Instruction[]
}

/** Every stage with its instructions (FROM up to the next FROM). */
function stages(): Map<string, Stage> {
  const found = new Map<string, Stage>()
  let current: Stage | undefined
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const from = instruction as From
      current = { from, instructions: [] }
      found.set(from.getBuildStage() ?? '', current)
    } else current?.instructions.push(instruction)
  }
  return found
}

const stage = (name: string): Stage => {
  const found = stages().get(name)
  assert.ok(found, `a stage named ${name}`)
  return found
}
const text = ({ instructions }: Stage) =>
  instructions.map((i) => `${i.getKeyword()} ${i.getArgumentsContent()}`).join('\n')
const copiesFrom = ({ instructions }: Stage) =>
  instructions
    .filter((i) => i.getKeyword() === 'COPY')
    .map((i) => [
      (i as Copy)
        .getFlags()
        .find((flag) => flag.getName() === 'from')
        ?.getValue() ?? 'context',
      i.getArgumentsContent(),
    ])
const platformOf = ({ from }: Stage) =>
  from
    .getFlags()
    .find((flag) => flag.getName() === 'platform')
    ?.getValue()

describe('Dockerfile stages', () => {
  test('are build, target-node and runtime, in that order', () => {
    assert.deepEqual([...stages().keys()], ['build', 'target-node', 'runtime'])
  })

  test('the build stage runs on the build platform and nothing in it depends on the target', () => {
    const build = stage('build')
    assert.equal(platformOf(build), '$BUILDPLATFORM')
    assert.match(text(build), /^RUN npm ci --ignore-scripts/m)
    assert.match(text(build), /^RUN npm run build/m)
    assert.doesNotMatch(text(build), /TARGET(PLATFORM|OS|ARCH|VARIANT)/)
  })

  test('the Node binary and the compile cache come from a stage on the target platform', () => {
    const target = stage('target-node')
    assert.equal(platformOf(target), undefined, 'no --platform: the target platform')
    assert.equal(target.from.getImageName(), stage('build').from.getImageName())
    assert.equal(target.from.getImageTag(), stage('build').from.getImageTag(), 'the same Node')
    assert.deepEqual(
      copiesFrom(target).filter(([from]) => from === 'build'),
      [['build', '/src/dist/ /app/dist/']],
      'only the architecture-independent bundle crosses over',
    )
    assert.match(
      text(target),
      /^USER 65532:65532\nRUN NODE_COMPILE_CACHE=\/app\/.compile-cache node scripts\/warm-compile-cache.ts \/app\/dist/m,
      'the cache is written by the runtime user with the target Node',
    )
    const runtime = copiesFrom(stage('runtime'))
    assert.deepEqual(
      runtime.map(([from]) => from),
      ['target-node', 'target-node', 'target-node'],
    )
    assert.ok(runtime.some(([, args]) => args === '/usr/local/bin/node /usr/local/bin/node'))
    assert.ok(runtime.some(([, args]) => args?.startsWith('/app/.compile-cache/')))
  })

  test('the runtime carries the OCI labels: version from the VERSION argument, licenses from package.json', () => {
    const labels = Object.fromEntries(
      stage('runtime')
        .instructions.filter((i) => i.getKeyword() === 'LABEL')
        .flatMap((i) => (i as Label).getProperties())
        .map((p) => [p.getName(), p.getValue()?.replace(/^"|"$/g, '')]),
    )
    const argument = (name: string) => `\${${name}}`
    assert.equal(labels['org.opencontainers.image.version'], argument('VERSION'))
    assert.equal(labels['org.opencontainers.image.revision'], argument('REVISION'))
    assert.equal(labels['org.opencontainers.image.source'], argument('SOURCE'))
    assert.equal(labels['org.opencontainers.image.licenses'], pkg.license)
  })

  test('the build stage refuses a VERSION argument other than package.json version', () => {
    const run = stage('build').instructions.find((i) =>
      /"\$VERSION"$/.test(i.getArgumentsContent() ?? ''),
    )
    const check = /(node -e "[^\n]*" "\$VERSION")$/.exec(run?.getArgumentsContent() ?? '')?.[1]
    assert.ok(check, 'a RUN step ends with the VERSION check')
    const runCheck = (version: string) =>
      execFileSync('bash', ['-c', check], {
        cwd: ROOT,
        env: { PATH: process.env['PATH'] ?? '', VERSION: version },
        encoding: 'utf8',
        stdio: 'pipe',
      })
    runCheck(pkg.version)
    assert.throws(
      () => runCheck('9.9.9-wrong'),
      /VERSION build arg 9\.9\.9-wrong != package\.json version/,
    )
  })
})
