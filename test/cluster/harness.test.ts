/**
 * The control-plane harness's own failure paths, with stand-in binaries and a stand-in `go` (no real build, no real
 * control plane): no Go (skip outside CI, fail in CI), a failing build step (named, with its log), a component that
 * exits or never becomes ready (the run fails within its limit with the last lines of the logs, and nothing is left
 * running), and a run killed outright (the next start reaps what it left).
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { reapStaleRuns, runDirectoriesOf, startControlPlane } from '../support/control-plane.ts'
import { ROOT } from '../support/process.ts'
import type { Component, ControlPlaneBinaries } from './build.ts'

const scratch = mkdtempSync(join(tmpdir(), 'irsa-harness-test-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

function script(name: string, body: string): string {
  const path = join(scratch, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}

/** Runs `npm run cluster:build`'s script with PATH and the cache dir replaced. */
function build(path: string, extra: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['test/cluster/build.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      PATH: path,
      HOME: scratch,
      IRSA_CLUSTER_CACHE: mkdtempSync(join(scratch, 'cache-')),
      ...extra,
    },
    timeout: 60_000,
  })
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('npm run cluster:build', () => {
  const noGo = mkdtempSync(join(scratch, 'no-go-'))
  it('without Go, outside CI: says what is missing, exits 0, and the control-plane tests skip', () => {
    const run = build(noGo)
    assert.equal(run.status, 0, run.stderr)
    assert.match(run.stderr, /no Go toolchain: `go` is not on PATH/)
    assert.match(run.stderr, /the control-plane tests will be skipped/)
  })
  it('without Go, in CI (CI=true): fails with exit 3', () => {
    const run = build(noGo, { CI: 'true' })
    assert.equal(run.status, 3, run.stderr)
    assert.match(run.stderr, /no Go toolchain/)
  })
  it('names the step that failed and where its log is', () => {
    const bin = mkdtempSync(join(scratch, 'fake-go-'))
    writeFileSync(
      join(bin, 'go'),
      [
        '#!/bin/sh',
        'if [ "$1" = env ]; then echo go1.26.8; exit 0; fi',
        'echo "go: simulated proxy failure for $*" >&2',
        'exit 1',
        '',
      ].join('\n'),
    )
    chmodSync(join(bin, 'go'), 0o755)
    const run = build(bin)
    assert.equal(run.status, 1, run.stderr)
    assert.match(
      run.stderr,
      /control-plane build step "go mod download" failed \(exit 1\); its log: (\S+)/,
    )
    const log = /its log: (\S+)/.exec(run.stderr)?.[1] ?? ''
    assert.match(readFileSync(log, 'utf8'), /simulated proxy failure for mod download/)
    assert.equal(
      existsSync(join(log, '..', 'complete')),
      false,
      'a failed build is never marked complete',
    )
  })
})

describe('startControlPlane with components that fail', () => {
  /** etcd that runs until killed, and the given kube-apiserver. */
  function binaries(apiserver: string): ControlPlaneBinaries {
    const paths: Record<Component, string> = {
      // No exec: the shell stays, so pgrep -f finds it by its path (and its `sleep` child dies with the group).
      etcd: script('etcd', 'echo "etcd stand-in up"; sleep 300'),
      'kube-apiserver': apiserver,
      'kube-controller-manager': script('kcm', 'exec sleep 300'),
    }
    return {
      kubernetesVersion: 'v0.0.0',
      etcdVersion: 'v0.0.0',
      dir: scratch,
      path: (c) => paths[c],
    }
  }
  const etcdPids = () =>
    spawnSync('pgrep', ['-f', join(scratch, 'etcd')], { encoding: 'utf8' }).stdout.trim()

  it('a kube-apiserver that exits fails the start with its last log lines, and nothing is left', async () => {
    const apiserver = script(
      'apiserver-exits',
      'echo "E0101 simulated: unknown flag --bogus" >&2; exit 1',
    )
    await assert.rejects(startControlPlane(binaries(apiserver)), (error: Error) => {
      assert.match(error.message, /the control plane did not start: kube-apiserver exited \(1\)/)
      assert.match(error.message, /--- kube-apiserver .*\nE0101 simulated: unknown flag --bogus/)
      assert.match(error.message, /--- etcd .*\netcd stand-in up/)
      return true
    })
    assert.equal(etcdPids(), '', 'etcd was killed with its process group')
    assert.deepEqual(runDirectoriesOf(process.pid), [], 'the run directory was removed')
  })

  it('one that never becomes ready fails within the limit, never hangs', async () => {
    const apiserver = script('apiserver-hangs', 'echo "I0101 starting forever"; exec sleep 300')
    await assert.rejects(
      startControlPlane(binaries(apiserver), () => {}, 1_500),
      (error: Error) => {
        assert.match(error.message, /timed out after 1500 ms waiting for kube-apiserver \/readyz/)
        assert.match(error.message, /I0101 starting forever/)
        return true
      },
    )
    assert.equal(etcdPids(), '')
    assert.deepEqual(runDirectoriesOf(process.pid), [])
  })
})

describe('reapStaleRuns', () => {
  it('kills the process groups and removes the directory a run killed outright left behind', async () => {
    const root = mkdtempSync(join(scratch, 'tmp-'))
    const dead = spawnSync('true').pid as number
    const child: ChildProcess = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' })
    child.unref()
    const pid = child.pid as number
    const run = join(root, 'irsa-control-plane-stale')
    mkdirSync(run)
    writeFileSync(join(run, 'owner.pid'), String(dead))
    writeFileSync(join(run, 'pids'), `${pid} sleep\n`)
    const mine = join(root, 'irsa-control-plane-live')
    mkdirSync(mine)
    writeFileSync(join(mine, 'owner.pid'), String(process.pid))
    assert.equal(reapStaleRuns(root), 1)
    await new Promise((resolve) => child.once('exit', resolve))
    assert.equal(alive(pid), false)
    assert.equal(existsSync(run), false)
    assert.equal(existsSync(mine), true, "a live owner's run is left alone")
  })
})
