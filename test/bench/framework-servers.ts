/**
 * The servers of `npm run bench:framework`, all answering the typical review with a fixed ServiceAccount (no
 * lookup), so only the layers around the planner differ (SIDE picks one):
 * - `floor`: node:http, read body, JSON.parse, the real planner, base64, JSON.stringify;
 * - `hono`: the same work in one bare Hono route on @hono/node-server (the framework by itself);
 * - `app`: our `createApp` on plain @hono/node-server `serve()`, silent logger, no process metrics;
 * - `app-server`: the same app on our `startServer` (keep-alive, timeouts, response tracking for drains);
 * - `app-metrics`: the same app with prom-client's default process metrics (GC observer, event-loop monitor).
 * Usage: SIDE=… PORT=… SA_FILE=… node test/bench/framework-servers.ts
 * @module
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createApp } from '../../function/app.ts'
import { appOptions, loadConfig } from '../../function/config.ts'
import { isValidRole } from '../../function/identity.ts'
import type { Pod } from '../../function/kube-objects.ts'
import { createMetrics } from '../../function/metrics.ts'
import { planPodMutation } from '../../function/mutate-pod.ts'
import { ANNOTATIONS } from '../../function/names.ts'
import { startServer } from '../../function/server.ts'
import { createStaticServiceAccountSource } from '../../function/service-accounts.ts'
import { benchIdentity } from './payloads.ts'

const side = process.env['SIDE'] ?? 'floor'
const port = Number(process.env['PORT'])
const sa = JSON.parse(readFileSync(process.env['SA_FILE'] ?? '', 'utf8'))
const role: string = sa.metadata.annotations[ANNOTATIONS.role]
if (!isValidRole(role)) throw new Error('the ServiceAccount file must carry a valid role')
const identity = benchIdentity(role)

/** The whole review work the floor and the bare Hono route share. */
function answer(text: string): string {
  const review = JSON.parse(text) as { request: { uid: string; object: Pod } }
  const plan = planPodMutation(review.request.object, identity)
  const patch = Buffer.from(JSON.stringify(plan.patch)).toString('base64')
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch },
  })
}

function floor(): void {
  createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      // Anything but a review (the bench's readiness probe is a GET) gets a 400, never a crash.
      try {
        const text = answer(Buffer.concat(chunks).toString('utf8'))
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(text)
      } catch {
        res.writeHead(400).end()
      }
    })
  }).listen(port, '127.0.0.1')
}

function bareHono(): void {
  const app = new Hono()
  app.post('/mutate', async (c) =>
    c.body(answer(await c.req.text()), 200, { 'content-type': 'application/json' }),
  )
  serve({ fetch: app.fetch, port, hostname: '127.0.0.1' })
}

async function ourApp(): Promise<void> {
  const config = loadConfig({})
  if (!config.ok) throw new Error(config.error)
  const silent = { info() {}, warn() {}, error() {}, isLevelEnabled: () => false }
  const app = createApp({
    ...appOptions(config.value),
    serviceAccounts: createStaticServiceAccountSource([sa]),
    logger: silent,
    metrics: createMetrics({ processMetrics: side === 'app-metrics' }),
    ready: () => true,
  })
  if (side === 'app-server') await startServer({ app, host: '127.0.0.1', port, logger: silent })
  else serve({ fetch: app.fetch, port, hostname: '127.0.0.1' })
}

if (side === 'floor') floor()
else if (side === 'hono') bareHono()
else await ourApp()
