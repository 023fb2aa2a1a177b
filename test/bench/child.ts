/**
 * Bench process helpers: spawn a server pinned to a CPU (taskset), wait for its `listening` line, read its memory
 * from /proc, POST one review, and time a cold start. Every wait is bounded.
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { cpus } from 'node:os'
import type { Duplex } from 'node:stream'
import { ROOT } from '../support/process.ts'

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Servers on CPU 0, load generator (this process) and the fake API on CPU 1, when there are 2+ CPUs. */
export const PINNING = cpus().length >= 2 && hasTaskset()
export const SERVER_CPU = '0'
export const LOAD_CPU = '1'

/** Pins this process (the load generator) to LOAD_CPU. */
export function pinSelf(): void {
  if (PINNING) execFileSync('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)])
}

export interface Child {
  readonly child: ChildProcess
  readonly pid: number
  readonly spawnedAt: number
  /** Resolves with the first JSON line whose msg is `listening` (bounded). */
  listening(timeoutMs?: number): Promise<Record<string, unknown>>
  readonly exit: Promise<number | null>
  /** The last 4000 characters of stderr. */
  stderr(): string
  stop(): Promise<void>
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/**
 * Spawns `node <nodeArgs> <entry>` (pinned to `cpu` when pinning is available) with exactly `env` plus PATH.
 */
export function spawnNode(
  entry: string,
  env: Record<string, string>,
  cpu?: string,
  nodeArgs: readonly string[] = [],
): Child {
  const node = [process.execPath, ...nodeArgs, entry]
  const [command, ...args] = PINNING && cpu !== undefined ? ['taskset', '-c', cpu, ...node] : node
  const spawnedAt = performance.now()
  const child = spawn(command ?? process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  let text = ''
  let stderr = ''
  let found: Record<string, unknown> | undefined
  let onFound: (line: Record<string, unknown>) => void = () => undefined
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    if (found !== undefined) return // after start-up, log lines are read and dropped
    text += chunk
    const line = text.split('\n').find((candidate) => candidate.includes('"listening"'))
    if (line === undefined) return
    found = JSON.parse(line) as Record<string, unknown>
    onFound(found)
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000)
  })
  const exit = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child)
      resolve(code)
    })
  })
  const listening = (timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (found !== undefined) return resolve(found)
      const timer = setTimeout(
        () => reject(new Error(`${entry} did not listen: ${stderr}`)),
        timeoutMs,
      )
      onFound = (line) => {
        clearTimeout(timer)
        resolve(line)
      }
      exit.then((code) => reject(new Error(`${entry} exited ${code}: ${stderr}`)))
    })
  const stop = async () => {
    child.kill('SIGKILL')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([exit, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))])
    clearTimeout(timer)
  }
  return { child, pid: child.pid ?? 0, spawnedAt, listening, exit, stderr: () => stderr, stop }
}

/** CPU time (user + system) of a process in milliseconds, from /proc (clock ticks of 10 ms); NaN off Linux. */
export function cpuMs(pid: number): number {
  const file = `/proc/${pid}/stat`
  if (!existsSync(file)) return Number.NaN
  const fields = readFileSync(file, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * CPU time (user + system) of this process's children that have exited and been reaped, in ms (clock ticks of
 * 10 ms, from /proc/self/stat); NaN off Linux. The delta around one child's life is that child's CPU time.
 */
export function reapedChildrenCpuMs(): number {
  const file = '/proc/self/stat'
  if (!existsSync(file)) return Number.NaN
  const fields = readFileSync(file, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[13]) + Number(fields[14])) * 10
}

/** VmRSS and VmHWM (peak RSS) of a process, in MiB; undefined off Linux. */
export function memoryOf(pid: number): { rss: number; peak: number } | undefined {
  const file = `/proc/${pid}/status`
  if (!existsSync(file)) return undefined
  const status = readFileSync(file, 'utf8')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

export interface Answer {
  readonly status: number
  readonly body: string
}

/**
 * One POST with a fresh connection (no keep-alive), or on the stream `connection` returns; rejects on socket errors
 * or after `timeoutMs`.
 */
export function post(
  url: string,
  body: string,
  timeoutMs = 10_000,
  connection?: () => Duplex,
): Promise<Answer> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ...(connection === undefined ? { agent: false } : { createConnection: connection }),
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end(body)
  })
}

/** One GET with a fresh connection; resolves with any HTTP status, rejects on socket errors. */
export function get(url: string, timeoutMs = 2000): Promise<number> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { agent: false, rejectUnauthorized: false, timeout: timeoutMs },
      (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

/** The decoded patch of a 200 answer (throws when there is none). */
export function patchOf(answer: Answer): string {
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`)
  const patch = JSON.parse(answer.body).response?.patch
  if (typeof patch !== 'string') throw new Error(`no patch in ${answer.body.slice(0, 200)}`)
  return Buffer.from(patch, 'base64').toString('utf8')
}

/** Milliseconds from spawn to the first 200 answer with a patch (retries refused connections every 2 ms). */
export async function coldStart(
  program: { readonly entry: string; readonly nodeArgs: readonly string[] },
  env: Record<string, string>,
  url: string,
  body: string,
): Promise<number> {
  const { entry, nodeArgs } = program
  const server = spawnNode(entry, env, SERVER_CPU, nodeArgs)
  try {
    const deadline = server.spawnedAt + 20_000
    while (performance.now() < deadline) {
      try {
        patchOf(await post(url, body))
        return performance.now() - server.spawnedAt
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
    }
    throw new Error(`${entry} gave no patch within 20 s`)
  } finally {
    await server.stop()
  }
}
