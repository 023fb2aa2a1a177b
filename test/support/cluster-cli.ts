/**
 * The operator CLI run against the real control plane as users run it: `node dist/cli.js <command> …` (the bundle
 * the image ships and the audit CronJob runs), with `KUBECONFIG` pointing at one of the harness's kubeconfigs
 * (admin, a ServiceAccount's TokenRequest token, a certificate user). Shared by test/cluster/cli-*.test.ts.
 * @module
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { ensureBundle } from './cluster-webhook.ts'
import type { Command } from './control-plane.ts'
import { ROOT } from './process.ts'

export interface CliOptions {
  /** The kubeconfig the CLI reads through `KUBECONFIG` (as a user's shell has it). */
  readonly kubeconfig: string
  /** Extra environment (e.g. PATH for generate-certs.sh is inherited anyway). */
  readonly env?: Readonly<Record<string, string>>
}

/** Runs `node dist/cli.js …args`; never throws on a non-zero exit. */
export function runCli(args: readonly string[], options: CliOptions): Promise<Command> {
  ensureBundle()
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(ROOT, 'dist/cli.js'), ...args],
      {
        cwd: ROOT,
        timeout: 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: { PATH: process.env['PATH'] ?? '', KUBECONFIG: options.kubeconfig, ...options.env },
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number')
          reject(new Error(`irsa-webhook ${args.join(' ')}: ${error.message}\n${stderr}`))
        else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr })
      },
    )
  })
}
