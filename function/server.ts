/**
 * Serving: plain HTTP (Knative, local dev) or HTTPS with certificates polled from disk and swapped in without a
 * restart (Secret volumes update by an atomic symlink swap that file watchers often miss, hence polling).
 * Graceful shutdown: stop accepting, let in-flight requests finish, then close what is left.
 * @module
 */

import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
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

/** Reads and checks a certificate/key pair: both parse and the key belongs to the certificate. */
export async function readKeyPair(certPath: string, keyPath: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
  if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
    throw new Error(`${keyPath} is not the private key of ${certPath}`)
  }
  return { cert, key }
}

// Keep connections open longer than kube-apiserver's idle pool so it never reuses a socket we just closed.
const KEEP_ALIVE_MS = 90_000
const HEADERS_TIMEOUT_MS = 35_000
const REQUEST_TIMEOUT_MS = 40_000

function watchCertificates(server: HttpsServer, tls: TlsFiles, initial: KeyPair, logger: Logger) {
  let current = initial
  let busy = false
  const timer = setInterval(async () => {
    if (busy) return
    busy = true
    try {
      const next = await readKeyPair(tls.certPath, tls.keyPath)
      if (next.cert !== current.cert || next.key !== current.key) {
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
  const pair = tls === undefined ? undefined : await readKeyPair(tls.certPath, tls.keyPath)
  const server = await new Promise<Server | HttpsServer>((resolve) => {
    const started = serve(
      {
        fetch: app.fetch,
        hostname: host,
        port,
        ...(pair === undefined
          ? {}
          : {
              createServer: createHttpsServer,
              serverOptions: { ...pair, minVersion: 'TLSv1.2' as const },
            }),
      },
      () => resolve(started as Server | HttpsServer),
    )
  })
  server.keepAliveTimeout = KEEP_ALIVE_MS
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.requestTimeout = REQUEST_TIMEOUT_MS
  const stopWatching =
    tls !== undefined && pair !== undefined
      ? watchCertificates(server as HttpsServer, tls, pair, logger)
      : () => undefined
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: (timeoutMs) => closeGracefully(server, timeoutMs, stopWatching),
  }
}

function closeGracefully(server: Server | HttpsServer, timeoutMs: number, stop: () => void) {
  stop()
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
