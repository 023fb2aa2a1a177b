/**
 * Runs the webhook as a child process (`node handler.ts` or `node dist/handler.js`) and waits for its
 * `listening` JSON log line. Every wait is bounded; children are killed on teardown and when the test process exits.
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { request as httpRequest } from 'node:http'
import { type Agent, request as httpsRequest } from 'node:https'
import { createServer, type Socket } from 'node:net'
import { connect, type SecureVersion } from 'node:tls'
import { fileURLToPath } from 'node:url'

/** The repository root, for `cwd` and entry paths. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface SpawnOptions {
  /** Script to run, relative to the repository root (default `handler.ts`). */
  readonly entry?: string
  /** The child's whole environment besides PATH: nothing else leaks in from the test process. */
  readonly env?: Readonly<Record<string, string>>
  /** Node options before the entry (e.g. the `npm start` script's `--max-semi-space-size=8`). */
  readonly nodeArgs?: readonly string[]
}

/** Bound for a child's start-up or exit. */
const START_MS = 20_000

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ChildServer {
  readonly child: ChildProcess
  readonly port: number
  /** `performance.now()` just before spawning, for start-up timing. */
  readonly spawnedAt: number
  /** Every JSON log line so far, parsed. */
  readonly logs: Record<string, unknown>[]
  stderr(): string
  /** Resolves with the exit status; rejects after `timeoutMs`. */
  exited(timeoutMs?: number): Promise<Exit>
  /** SIGKILL if still running, then waits (bounded) for the exit. Safe to call twice. */
  stop(): Promise<void>
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** Fails (instead of hanging) when `promise` has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A loopback port nothing listens on: bound, read and released (for a child that must be told its port before it
 * starts, or for a connection that must be refused).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Polls `check` every 25 ms until it returns a value other than undefined; bounded. */
export async function poll<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  // Once timed out, the loop stops after the check in flight: a check that never succeeds must not keep running
  // (and keep the test file's process alive) after the test has failed.
  let expired = false
  const loop = async (): Promise<T> => {
    while (!expired) {
      const value = await check()
      if (value !== undefined) return value
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error(`gave up polling for ${what}`)
  }
  try {
    return await within(loop(), timeoutMs, what)
  } finally {
    expired = true
  }
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

function launch(options: SpawnOptions) {
  const env = { PATH: process.env['PATH'] ?? '', ...options.env }
  const spawnedAt = performance.now()
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), options.entry ?? 'handler.ts'],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  live.add(child)
  // A child a failed test forgot must not keep the test process alive; the exit hook above kills it.
  child.unref()
  for (const stream of [child.stdout, child.stderr]) (stream as Partial<Socket> | null)?.unref?.()
  const out = { stdout: '', stderr: '', logs: [] as Record<string, unknown>[] }
  let partial = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out.stdout += chunk
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      const parsed = parseLine(line)
      if (parsed !== undefined) out.logs.push(parsed)
    }
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    out.stderr += chunk
  })
  const exit = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      resolve({ code, signal })
    })
  })
  return { child, spawnedAt, out, exit }
}

/** Runs the entry to completion (for start-up failures): exit status and output; bounded. */
export async function runToExit(options: SpawnOptions) {
  const { child, out, exit } = launch(options)
  try {
    const status = await within(exit, START_MS, 'the child to exit')
    return { ...status, stdout: out.stdout, stderr: out.stderr }
  } finally {
    child.kill('SIGKILL')
  }
}

/** Spawns the server and resolves once it logged `listening` (with its port). */
export async function spawnServer(options: SpawnOptions = {}): Promise<ChildServer> {
  const { child, spawnedAt, out, exit } = launch(options)
  let running = true
  exit.then(() => {
    running = false
  })
  const exited = (timeoutMs = 20_000) => within(exit, timeoutMs, 'the child to exit')
  const stop = async () => {
    if (running) child.kill('SIGKILL')
    await exited(10_000)
  }
  const listening = () => out.logs.find((line) => line['msg'] === 'listening')
  try {
    const line = await poll(
      () => {
        if (!running) throw new Error(`exited before listening:\n${out.stderr}${out.stdout}`)
        return listening()
      },
      'the "listening" log line',
      START_MS,
    )
    return {
      child,
      port: Number(line['port']),
      spawnedAt,
      logs: out.logs,
      stderr: () => out.stderr,
      exited,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** A status and body text. */
export interface Reply {
  status: number
  text: string
}

/** Where `send` goes: HTTPS verified with `ca` when set, plain HTTP otherwise. */
export interface Target {
  port: number
  ca?: string
  agent?: Agent
}

/** One request over HTTPS (with `ca`) or HTTP; bounded. */
export function send(target: Target, method: string, path: string, body?: string) {
  const options = {
    host: '127.0.0.1',
    port: target.port,
    method,
    path,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(target.ca === undefined ? {} : { ca: target.ca, servername: 'localhost' }),
    ...(target.agent === undefined ? {} : { agent: target.agent }),
  }
  const call = new Promise<Reply>((resolve, reject) => {
    const req = (target.ca === undefined ? httpRequest : httpsRequest)(options, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
  return within(call, 15_000, `${method} ${path}`)
}

/** Completes a TLS handshake with the given version range; resolves the peer's serial or rejects. */
export function handshake(port: number, ca: string, versions: [SecureVersion, SecureVersion]) {
  const attempt = new Promise<string>((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca,
      servername: 'localhost',
      minVersion: versions[0],
      maxVersion: versions[1],
      // Let the client offer old versions at all, so that a refusal is the server's.
      ciphers: 'DEFAULT:@SECLEVEL=0',
    })
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().serialNumber)
      socket.end()
    })
    socket.once('error', reject)
  })
  return within(attempt, 10_000, 'a TLS handshake')
}
