/**
 * `npm run bench:start`: only the cold-start part of `npm run bench` against the bare-node yardstick (see
 * startup.ts), for both schemes, with PASS/MISS against issue 12's targets. ~1 min.
 *
 * Options: --runs N (rounds per scheme, default 11); --command "node <flags> <entry>" measures another start
 * command instead of package.json's `start` (for trials; the bare yardstick takes that command's flags).
 * @module
 */
import { parseArgs } from 'node:util'
import { pinSelf } from './child.ts'
import type { Program } from './image-command.ts'
import { buildPayloads } from './payloads.ts'
import { machineLines } from './report.ts'
import { commandLines, ensureBuild, OURS, startEnvironment } from './setup.ts'
import { startupLines, startupRatios, startupTargets } from './startup.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '11' },
    command: { type: 'string' },
  },
})
const RUNS = Number(values.runs)

function parseCommand(command: string | undefined): Program {
  if (command === undefined) return OURS
  const words = command.trim().split(/\s+/)
  const entry = words.at(-1)
  if (words[0] !== 'node' || entry === undefined || words.length < 2) {
    throw new Error(`--command must be "node [flags] <entry>": ${command}`)
  }
  return { entry, nodeArgs: words.slice(1, -1) }
}

pinSelf()
const program = parseCommand(values.command)
for (const line of machineLines()) console.log(line)
console.log(ensureBuild())
const env = await startEnvironment()
try {
  for (const line of commandLines(env)) console.log(line)
  if (program !== OURS)
    console.log(`measured instead: node ${[...program.nodeArgs, program.entry].join(' ')}`)
  const body = buildPayloads().small.body
  const http = await startupRatios(env, 'http', body, RUNS, program)
  for (const line of startupLines('http', http)) console.log(line)
  const https = await startupRatios(env, 'https', body, RUNS, program)
  for (const line of startupLines('https', https)) console.log(line)
  console.log('\ntargets (ours/bare node):')
  for (const line of startupTargets({ http, https }, RUNS)) console.log(line)
} finally {
  await env.close()
}
