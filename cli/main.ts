/**
 * Command dispatch for `irsa-webhook <command>`: help, usage errors (exit 2) and unexpected failures (exit 1).
 * @module
 */
import { VERSION } from '../function/version.ts'
import { runAudit } from './audit/audit.ts'
import { runCerts } from './certs/certs.ts'
import { runDoctor } from './doctor/doctor.ts'
import { runMutate } from './mutate/mutate.ts'
import { runOidcIssuer } from './oidc/oidc-issuer.ts'
import { EXIT, type Io, UsageError } from './shared/io.ts'

type Command = (argv: string[], io: Io) => Promise<number>

const COMMANDS: Readonly<Record<string, { run: Command; summary: string }>> = {
  mutate: {
    run: runMutate,
    summary: "run the webhook's decision on manifests (no cluster needed)",
  },
  'oidc-issuer': {
    run: runOidcIssuer,
    summary: "print the payload that registers the cluster's OIDC issuer with Vultr",
  },
  doctor: { run: runDoctor, summary: 'check a live installation; exit 1 when a check fails' },
  audit: {
    run: runAudit,
    summary: 'list pods admitted without their identity; --heal evicts them (exit 1: some found)',
  },
  certs: {
    run: runCerts,
    summary: "make or renew the webhook's CA, serving certificate and caBundle in the cluster",
  },
}

const USAGE = `Usage: irsa-webhook <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(12)} ${summary}`)
  .join('\n')}

Run irsa-webhook <command> --help for a command's options; irsa-webhook --version prints the release.`

/** Runs one command line; returns the exit code. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(`${USAGE}\n`)
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  if (name === '--version' || name === 'version') {
    io.out(`${VERSION}\n`)
    return EXIT.ok
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    io.err(`irsa-webhook: unknown command ${JSON.stringify(name)}\n\n${USAGE}\n`)
    return EXIT.usage
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (
      error instanceof UsageError ||
      String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
    ) {
      io.err(
        `irsa-webhook ${name}: ${(error as Error).message}\nSee: irsa-webhook ${name} --help\n`,
      )
      return EXIT.usage
    }
    io.err(`irsa-webhook ${name}: ${error instanceof Error ? error.message : String(error)}\n`)
    return EXIT.failed
  }
}
