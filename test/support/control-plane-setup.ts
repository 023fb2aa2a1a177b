/**
 * The node --test global setup (`--test-global-setup`): starts the run's one control plane before any test file and
 * stops it after the last (test/support/control-plane.ts). Test files find it through `IRSA_CONTROL_PLANE`, which
 * the runner's children inherit. Without Go outside CI it sets `IRSA_CONTROL_PLANE_SKIP` instead, and the
 * control-plane tests skip with that reason; in CI (`CI=true`) that fails the run.
 * @module
 */
import { join } from 'node:path'
import { ensureBundle } from './cluster-webhook.ts'
import {
  CONTROL_PLANE_ENV,
  CONTROL_PLANE_SKIP_ENV,
  type RunningControlPlane,
  startOrSkip,
} from './control-plane.ts'

let running: RunningControlPlane | undefined

const log = (line: string) => process.stderr.write(`control plane: ${line}\n`)

export async function globalSetup(): Promise<void> {
  const started = await startOrSkip(log)
  if ('skip' in started) {
    process.env[CONTROL_PLANE_SKIP_ENV] = started.skip
    log(`SKIPPED: ${started.skip}`)
    return
  }
  running = started
  const { info } = started
  process.env[CONTROL_PLANE_ENV] = join(info.dir, 'control-plane.json')
  log(`kube-apiserver ${info.version} at ${info.server} (logs: ${info.logDir})`)
  // The webhook and CLI under test run from dist/, as in production: built once, fresh, for the whole run.
  ensureBundle(true)
  // An interrupted run (Ctrl-C, a CI cancel) still stops every process group and removes the directory.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(signal, () => {
      started.killNow()
      process.kill(process.pid, signal)
    })
  process.once('exit', () => started.killNow())
}

export async function globalTeardown(): Promise<void> {
  await running?.stop()
  running = undefined
}
