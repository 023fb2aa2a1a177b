/**
 * The Dockerfile's stage structure, read with dockerfile-ast: a multi-arch build (`docker buildx build --platform
 * linux/amd64,linux/arm64`, as .github/workflows/release.yml runs it) builds the bundle once on the build machine
 * and takes the Node binary and the compile cache from the target platform; the OCI labels carry the release.
 * Read as text: the Node version it builds on, and what the image runs (the `npm start` bundle, the audit CLI).
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
import { type Container, get, list, parseFiles } from '../support/manifests.ts'
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

describe('Dockerfile: the Node it builds on, and what the image runs', () => {
  const source = readFileSync(join(ROOT, 'Dockerfile'), 'utf8') // as text: the regexes below read lines
  const lastStage = source.slice(source.lastIndexOf('\nFROM '))

  test('builds on the Node version the tests run on, and never from a latest tag', () => {
    assert.equal(/^ARG NODE_VERSION=(\S+)$/m.exec(source)?.[1], get(pkg, 'devDependencies.node'))
    assert.doesNotMatch(source, /^FROM \S+:latest\b/m)
    assert.match(source, /npm ci --ignore-scripts/)
    assert.match(source, /RUN npm run build/)
  })

  test('ships dist/cli.js where the audit CronJob runs it (WORKDIR /app)', () => {
    const [cron] = parseFiles('deploy/components/audit-cronjob/cronjob.yaml')
    const [container] = list<Container>(cron, 'spec.jobTemplate.spec.template.spec.containers')
    const command = (container?.['command'] as string[] | undefined) ?? []
    const [node] = command
    const script = command.find((arg) => arg.endsWith('.js'))
    assert.equal(node, 'node')
    assert.deepEqual(
      command.slice(1, command.indexOf(script ?? '')),
      String(get(pkg, 'scripts.cli')).split(' ').slice(1, -1),
      'the node flags `npm run cli` runs the CLI with',
    )
    assert.equal(/^WORKDIR (\S+)$/m.exec(lastStage)?.[1], '/app')
    const shipped = /^COPY --from=target-node \S* ?\/app\/dist\/ (\S+)$/m.exec(lastStage)?.[1]
    assert.equal(shipped, '/app/dist/')
    assert.ok(join('/app', script ?? '').startsWith(shipped), `${script} is in ${shipped}`)
    assert.match(source, /node dist\/cli\.js --help/, 'the build checks the CLI bundle runs')
  })

  test('runs the bundle `npm start` runs, in exec form, as 65532:65532', () => {
    const cmd = /^CMD (\[.*\])$/m.exec(lastStage)?.[1]
    assert.deepEqual(JSON.parse(cmd ?? 'null'), String(get(pkg, 'scripts.start')).split(' '))
    assert.match(lastStage, /^USER 65532:65532$/m)
    assert.match(lastStage, /^COPY --from=target-node .*\/dist\/ /m)
    assert.doesNotMatch(lastStage, /node_modules/, 'the bundle needs no node_modules')
  })
})
