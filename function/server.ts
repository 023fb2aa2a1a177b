/**
 * Serving: plain HTTP (Knative, local dev) or HTTPS with certificates polled from disk and swapped in without a
 * restart (Secret volumes update by an atomic symlink swap that file watchers often miss, hence polling).
 * Graceful shutdown: stop accepting, let in-flight requests finish, then close what is left.
 * @module
 */

import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { getRequestListener } from '@hono/node-server'
import type { Hono } from 'hono'
import type { Logger } from './app.ts'

export interface TlsFiles {
  readonly certPath: string
  readonly keyPath: string
  readonly reloadIntervalMs: number
}

export interface ServeOptions {
  readonly app: Hono
  readonly host: string
  readonly port: number
  /** HTTPS when set, plain HTTP otherwise. */
  readonly tls?: TlsFiles | undefined
  readonly logger: Logger
  /** Overrides for the connection timeouts (tests use short ones); defaults suit kube-apiserver. */
  readonly timeouts?: Partial<ServerTimeouts> | undefined
}

export interface ServerTimeouts {
  /** Idle keep-alive sockets live this long. */
  readonly keepAliveMs: number
  /** The request headers must arrive within this. */
  readonly headersMs: number
  /** The whole request (headers and body) must arrive within this, else 408 and the socket closes. */
  readonly requestMs: number
  /** How often Node checks the two limits above (a slow body can live up to requestMs + this). */
  readonly checkIntervalMs: number
}

export interface RunningServer {
  readonly port: number
  readonly server: Server | HttpsServer
  /** Stops accepting, waits up to `timeoutMs` for in-flight requests, then closes every connection. */
  close(timeoutMs: number): Promise<void>
}

interface KeyPair {
  readonly cert: string
  readonly key: string
}

async function readFiles(certPath: string, keyPath: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
  return { cert, key }
}

/** Checks a pair: both parse and the key belongs to the certificate. */
function checkKeyPair(pair: KeyPair, certPath: string, keyPath: string): KeyPair {
  if (!new X509Certificate(pair.cert).checkPrivateKey(createPrivateKey(pair.key))) {
    throw new Error(`${keyPath} is not the private key of ${certPath}`)
  }
  return pair
}

/** Reads and checks a certificate/key pair. */
async function readKeyPair(certPath: string, keyPath: string): Promise<KeyPair> {
  return checkKeyPair(await readFiles(certPath, keyPath), certPath, keyPath)
}

const DEFAULT_TIMEOUTS: ServerTimeouts = {
  // Longer than kube-apiserver's idle pool, so it never reuses a socket we just closed.
  keepAliveMs: 90_000,
  headersMs: 35_000,
  // kube-apiserver gives a webhook at most 30 s; a body still arriving after 40 s is an attack or a dead peer.
  requestMs: 40_000,
  // Node's default is 30 s, which would let a slow-loris body live ~70 s.
  checkIntervalMs: 5_000,
}

function watchCertificates(server: HttpsServer, tls: TlsFiles, initial: KeyPair, logger: Logger) {
  let current = initial
  let busy = false
  const timer = setInterval(async () => {
    if (busy) return
    busy = true
    try {
      // Parsing and checking the pair is done only when the files changed, not on every poll.
      const next = await readFiles(tls.certPath, tls.keyPath)
      if (next.cert !== current.cert || next.key !== current.key) {
        checkKeyPair(next, tls.certPath, tls.keyPath)
        server.setSecureContext({ ...next, minVersion: 'TLSv1.2' })
        current = next
        logger.info({ certPath: tls.certPath }, 'serving certificate reloaded')
      }
    } catch (error) {
      // Mid-rotation the two files can disagree for a moment; keep serving the old pair.
      logger.warn({ error: (error as Error).message }, 'certificate reload skipped')
    } finally {
      busy = false
    }
  }, tls.reloadIntervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

/** Starts the server and resolves once it listens. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { app, host, port, tls, logger } = options
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts }
  const checking = { connectionsCheckingInterval: timeouts.checkIntervalMs }
  const pair = tls === undefined ? undefined : await readKeyPair(tls.certPath, tls.keyPath)
  const shutdown = new Shutdown(getRequestListener(app.fetch, { hostname: host }))
  const server: Server | HttpsServer =
    pair === undefined
      ? createHttpServer(checking, shutdown.listener)
      : createHttpsServer({ ...pair, ...checking, minVersion: 'TLSv1.2' }, shutdown.listener)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.keepAliveTimeout = timeouts.keepAliveMs
  server.headersTimeout = timeouts.headersMs
  server.requestTimeout = timeouts.requestMs
  const stopWatching =
    tls !== undefined && pair !== undefined
      ? watchCertificates(server as HttpsServer, tls, pair, logger)
      : () => undefined
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: (timeoutMs) => {
      stopWatching()
      shutdown.begin()
      return closeGracefully(server, timeoutMs)
    },
  }
}

type Listener = (request: IncomingMessage, response: ServerResponse) => unknown

/**
 * Node's close() ends only the connections idle at that moment; a client keeps reusing the busy ones (the
 * apiserver pools them), so close() would wait for the forced close and cut whatever is in flight then. Once
 * `begin()` is called, every pending and every new response carries `Connection: close`.
 *
 * It wraps the one request listener (a second `request` listener would make every emit copy the listener list)
 * and remembers each connection's latest response in a map keyed by socket, which costs a `Map.set` per request
 * and one `close` listener per connection rather than per request. A finished response in the map is harmless:
 * its headers are sent, so it is skipped.
 */
class Shutdown {
  readonly #latest = new Map<object, ServerResponse>()
  #closing = false
  readonly listener: Listener

  constructor(next: Listener) {
    this.listener = (request, response) => {
      if (this.#closing) {
        response.setHeader('connection', 'close')
      } else {
        const socket = request.socket
        if (!this.#latest.has(socket)) socket.once('close', () => this.#latest.delete(socket))
        this.#latest.set(socket, response)
      }
      return next(request, response)
    }
  }

  begin(): void {
    this.#closing = true
    for (const response of this.#latest.values()) {
      if (!response.headersSent) response.setHeader('connection', 'close')
    }
    this.#latest.clear()
  }
}

function closeGracefully(server: Server | HttpsServer, timeoutMs: number) {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs)
    force.unref()
    // close() stops accepting and, on Node >= 19, closes idle keep-alive sockets; busy ones close after replying.
    server.close(() => {
      clearTimeout(force)
      resolve()
    })
    server.closeIdleConnections()
  })
}
