/**
 * Cold start against the bare-node yardstick (issue 12): in each round, paired and interleaved,
 *  - **bare**: `node <ours' node flags> -e 0`, spawn → exit, same Node binary, same flags, same env (compile
 *    cache dir included) and the same CPU pinning as ours;
 *  - **ours**: ours as the image runs it (in-cluster lookup), spawn → **listening** (the first TCP connect that
 *    succeeds; polled every 1 ms) and, in the same process, spawn → **first 200 with a patch**: the review is sent
 *    on that first connection, so it includes the first ServiceAccount GET over HTTPS (TLS handshake to the API).
 * The ratios are medians over the rounds of ours/bare in that round.
 * @module
 */
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { freePort } from '../support/process.ts'
import {
  type Child,
  cpuMs,
  patchOf,
  post,
  reapedChildrenCpuMs,
  SERVER_CPU,
  spawnNode,
} from './child.ts'
import type { Program } from './image-command.ts'
import { fixed, median, verdict } from './report.ts'
import { type Environment, OURS, oursEnv, type Scheme } from './setup.ts'

/** Milliseconds from spawn (wall clock), or the process's CPU time by then. */
export interface StartupTimes {
  readonly bare: number
  readonly listening: number
  readonly firstPatch: number
}

/** One round: wall-clock times, and CPU times (user + system, 10 ms clock ticks; less disturbed by other tenants). */
export interface StartupRound extends StartupTimes {
  readonly cpu: StartupTimes
}

export interface StartupResult {
  readonly rounds: readonly StartupRound[]
  /** Medians of the rounds' own ratios (ours/bare in the same round). */
  readonly listeningRatio: number
  readonly firstPatchRatio: number
  /** Medians of the absolute times, ms. */
  readonly bare: number
  readonly listening: number
  readonly firstPatch: number
  /** The same two ratios from CPU time (informational). */
  readonly cpuListeningRatio: number
  readonly cpuFirstPatchRatio: number
}

const DEADLINE_MS = 20_000

/**
 * The flags of `program` that apply to `node -e 0`: all but `--snapshot-blob <file>` (a snapshot with a main
 * function would run that instead of `-e`).
 */
function bareFlags(program: Program): string[] {
  const flags: string[] = []
  for (let index = 0; index < program.nodeArgs.length; index += 1) {
    const flag = program.nodeArgs[index] ?? ''
    if (flag === '--snapshot-blob') index += 1
    else if (!flag.startsWith('--snapshot-blob=')) flags.push(flag)
  }
  return flags
}

/** `node <flags> -e 0`: spawn → exit, ms, and its CPU time. */
export async function bareStart(
  program: Program,
  vars: Record<string, string>,
): Promise<{ wall: number; cpu: number }> {
  const cpuBefore = reapedChildrenCpuMs()
  // spawnNode runs `node <nodeArgs> <entry>`: the "entry" here is the `-e` script.
  const child = spawnNode('0', vars, SERVER_CPU, [...bareFlags(program), '-e'])
  const code = await child.exit
  const wall = performance.now() - child.spawnedAt
  if (code !== 0) throw new Error(`node -e 0 exited ${code}: ${child.stderr()}`)
  return { wall, cpu: reapedChildrenCpuMs() - cpuBefore }
}

/** One TCP connect to 127.0.0.1:`port`: the connected socket, or undefined when refused. */
function tryConnect(port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true })
    socket.once('connect', () => resolve(socket))
    socket.once('error', () => {
      socket.destroy()
      resolve(undefined)
    })
  })
}

/**
 * Spawn → listening: connects to 127.0.0.1:`port` every 1 ms until one connect succeeds (or the child exits, or
 * 20 s pass); the connected socket, and the wall-clock ms since spawn and the child's CPU ms at that moment.
 */
export async function firstConnect(
  child: Child,
  port: number,
  name: string,
): Promise<{ socket: Socket; wall: number; cpu: number }> {
  const deadline = child.spawnedAt + DEADLINE_MS
  while (performance.now() < deadline && child.child.exitCode === null) {
    const socket = await tryConnect(port)
    if (socket !== undefined) {
      return { socket, wall: performance.now() - child.spawnedAt, cpu: cpuMs(child.pid) }
    }
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  throw new Error(`${name} did not listen: ${child.stderr()}`)
}

/** Ours: spawn → listening and spawn → first 200 with a patch, in one process. */
async function oursStart(
  program: Program,
  vars: Record<string, string>,
  scheme: Scheme,
  port: number,
  body: string,
): Promise<{
  listening: number
  firstPatch: number
  cpu: { listening: number; firstPatch: number }
}> {
  const server = spawnNode(program.entry, vars, SERVER_CPU, program.nodeArgs)
  try {
    const {
      socket,
      wall: listening,
      cpu: cpuListening,
    } = await firstConnect(server, port, program.entry)
    // The review goes on that first connection (wrapped in TLS for https).
    const stream = () =>
      scheme === 'https' ? tlsConnect({ socket, rejectUnauthorized: false }) : socket
    const url = `${scheme}://127.0.0.1:${port}/mutate?timeout=10s`
    patchOf(await post(url, body, DEADLINE_MS, stream))
    const firstPatch = performance.now() - server.spawnedAt
    return {
      listening,
      firstPatch,
      cpu: { listening: cpuListening, firstPatch: cpuMs(server.pid) },
    }
  } finally {
    await server.stop()
  }
}

/**
 * `runs` rounds of {bare, ours} in one scheme, alternating who goes first; `program` defaults to OURS (the image's
 * command, or a variant under trial).
 */
export async function startupRatios(
  env: Environment,
  scheme: Scheme,
  body: string,
  runs: number,
  program: Program = OURS,
): Promise<StartupResult> {
  const rounds: StartupRound[] = []
  for (let run = 0; run < runs; run += 1) {
    const port = await freePort()
    const vars = oursEnv(env, { scheme, ttlSeconds: 10, port })
    const first = run % 2 === 0 ? await bareStart(program, vars) : undefined
    const ours = await oursStart(program, vars, scheme, port, body)
    const bare = first ?? (await bareStart(program, vars))
    rounds.push({
      bare: bare.wall,
      listening: ours.listening,
      firstPatch: ours.firstPatch,
      cpu: { bare: bare.cpu, ...ours.cpu },
    })
  }
  const pick = (f: (round: StartupRound) => number) => median(rounds.map(f))
  return {
    rounds,
    listeningRatio: pick((round) => round.listening / round.bare),
    firstPatchRatio: pick((round) => round.firstPatch / round.bare),
    cpuListeningRatio: pick((round) => round.cpu.listening / round.cpu.bare),
    cpuFirstPatchRatio: pick((round) => round.cpu.firstPatch / round.cpu.bare),
    bare: pick((round) => round.bare),
    listening: pick((round) => round.listening),
    firstPatch: pick((round) => round.firstPatch),
  }
}

/** Printed lines for one scheme: the three medians, each with its rounds. */
export function startupLines(scheme: Scheme, result: StartupResult): string[] {
  const list = (f: (round: StartupRound) => number) =>
    result.rounds.map((round) => f(round).toFixed(0)).join(' ')
  const label = (text: string) => `start ${scheme.padEnd(5)} ${text.padEnd(26)}`
  return [
    `${label('bare node -e 0 (spawn→exit)')} median ${fixed(result.bare, 0)} ms [${list((r) => r.bare)}]`,
    `${label('ours spawn→listening')} median ${fixed(result.listening, 0)} ms [${list((r) => r.listening)}], ${fixed(result.listeningRatio)}x bare (median of rounds' ratios)`,
    `${label('ours spawn→first 200+patch')} median ${fixed(result.firstPatch, 0)} ms [${list((r) => r.firstPatch)}], ${fixed(result.firstPatchRatio)}x bare (median of rounds' ratios)`,
    `${label('CPU ms bare/listen/200')} [${list((r) => r.cpu.bare)}] / [${list((r) => r.cpu.listening)}] / [${list((r) => r.cpu.firstPatch)}]: listening ${fixed(result.cpuListeningRatio)}x, first 200 ${fixed(result.cpuFirstPatchRatio)}x bare (info)`,
  ]
}

/** PASS/MISS lines: spawn → listening ≤ 1.5× bare, spawn → first 200 with a patch ≤ 2.0× bare, per scheme. */
export function startupTargets(
  results: Readonly<Record<Scheme, StartupResult>>,
  runs: number,
): string[] {
  const names: Record<Scheme, string> = { http: 'HTTP (Knative)', https: 'HTTPS (classic)' }
  return (['http', 'https'] as const).flatMap((scheme) => {
    const result = results[scheme]
    const detail = (ms: number) =>
      `(${fixed(ms, 0)} vs ${fixed(result.bare, 0)} ms, median of ${runs} paired rounds)`
    return [
      verdict({
        name: `spawn → listening, ${names[scheme]}`,
        ratio: result.listeningRatio,
        limit: 1.5,
        kind: 'max',
        detail: detail(result.listening),
      }),
      verdict({
        name: `spawn → first 200 with a patch, ${names[scheme]}`,
        ratio: result.firstPatchRatio,
        limit: 2.0,
        kind: 'max',
        detail: detail(result.firstPatch),
      }),
    ]
  })
}
