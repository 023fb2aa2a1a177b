/**
 * Hostile bodies at the HTTP edge, against the real serving code (function/server.ts + createApp) on 127.0.0.1:0
 * with raw sockets: each gets a 4xx with a message, nothing pollutes Object.prototype, a slow body is cut by the
 * request timeout while others are served, and a good review right after still succeeds.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { type RunningServer, startServer } from '../../function/server.ts'
import { loadJson } from '../support/fixtures.ts'
import { assertFailureStatus, createTestApp, memoryLogger } from '../support/webhook.ts'

const LIMIT = 1024 * 1024
const GOOD = loadJson('admission/pod-irsa-single-container.json')
const SA = loadJson('admission/serviceaccount-irsa-sa.json')
let server: RunningServer

before(async () => {
  const { app } = createTestApp([SA], {
    BODY_LIMIT_BYTES: String(LIMIT),
    LOOKUP_TIMEOUT_MS: '1000',
  })
  server = await startServer({
    app,
    host: '127.0.0.1',
    port: 0,
    logger: memoryLogger(),
    timeouts: { requestMs: 1500, headersMs: 1000, checkIntervalMs: 200 },
  })
})
after(() => server.close(1000))

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
}

interface Answer {
  status: number
  body: string
}

/** Writes `head` then each part over a raw socket (with `gapMs` between parts) and reads the answer; bounded. */
function exchange(head: string, parts: readonly (string | Buffer)[] = [], gapMs = 0) {
  return new Promise<Answer>((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1')
    let text = ''
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 10 s')), 10_000)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      text += chunk
    })
    socket.on('error', (error) => (text === '' ? reject(error) : undefined))
    socket.on('close', () => {
      clearTimeout(timer)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) })
    })
    const write = async () => {
      socket.write(head)
      for (const part of parts) {
        if (socket.destroyed || text !== '') return
        if (gapMs > 0) await new Promise((done) => setTimeout(done, gapMs))
        socket.write(part)
      }
    }
    socket.on('connect', () => void write())
  })
}

function post(body: string | Buffer, type = 'application/json'): Promise<Answer> {
  const length = Buffer.byteLength(body)
  const head = `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`
  return exchange(head, [body])
}

/** A good review is answered with a patch (the server is up and healthy). */
async function assertStillServes(): Promise<void> {
  const answer = await post(JSON.stringify(GOOD))
  assert.equal(answer.status, 200)
  const body = JSON.parse(answer.body)
  assert.equal(body.response.uid, GOOD.request.uid)
  assert.equal(body.response.patchType, 'JSONPatch')
}

async function assertRejected(answer: Answer, status: number, message: RegExp): Promise<void> {
  assert.equal(answer.status, status, answer.body)
  assertFailureStatus(JSON.parse(answer.body), status, REASONS[status] ?? '', message)
  await assertStillServes()
}

const review = (patch: (r: typeof GOOD) => unknown) => JSON.stringify(patch(structuredClone(GOOD)))

describe('hostile bodies at the HTTP edge', () => {
  it('answers 400 to a body that is not JSON, or JSON cut short', async () => {
    await assertRejected(await post('hello'), 400, /not valid JSON/)
    await assertRejected(await post(JSON.stringify(GOOD).slice(0, 300)), 400, /not valid JSON/)
    await assertRejected(await post(''), 400, /not valid JSON/)
  })

  it('answers 400 to a wrong kind or apiVersion, naming the field', async () => {
    await assertRejected(await post(review((r) => ({ ...r, kind: 'Pod' }))), 400, /kind/)
    const v1beta1 = review((r) => ({ ...r, apiVersion: 'admission.k8s.io/v1beta1' }))
    await assertRejected(await post(v1beta1), 400, /apiVersion/)
    await assertRejected(await post('[1,2]'), 400, /JSON object/)
  })

  it('answers 400 to a missing request or uid', async () => {
    await assertRejected(await post(review((r) => ({ ...r, request: undefined }))), 400, /request/)
    const noUid = review((r) => ({ ...r, request: { ...r.request, uid: undefined } }))
    await assertRejected(await post(noUid), 400, /uid/)
    const emptyUid = review((r) => ({ ...r, request: { ...r.request, uid: '' } }))
    await assertRejected(await post(emptyUid), 400, /uid/)
  })

  it('never reads a request from __proto__ and never pollutes Object.prototype', async () => {
    const json = JSON.stringify(GOOD)
    const inProto = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","__proto__":{"request":${JSON.stringify(GOOD.request)}}}`
    await assertRejected(await post(inProto), 400, /request/)
    const poisoned = json
      .replace('"request":{', '"request":{"__proto__":{"polluted":"request"},')
      .replace('"spec":{', '"spec":{"constructor":{"prototype":{"polluted":"spec"}},')
      .replace('"containers":[{', '"containers":[{"__proto__":{"polluted":"container"},')
      .replace(/^\{/, '{"__proto__":{"polluted":"root","allowed":false},')
    const answer = await post(poisoned)
    assert.equal(answer.status, 200, answer.body)
    assert.equal(JSON.parse(answer.body).response.allowed, true)
    assert.equal(({} as { polluted?: unknown }).polluted, undefined)
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false)
    await assertStillServes()
  })

  it('survives 100k nested arrays: 400 where a pod or review is expected, ignored in an unknown field', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
    await assertRejected(await post(deep), 400, /JSON object/)
    const asObject = JSON.stringify(GOOD).replace(/"object":\{/, `"object":${deep},"x":{`)
    await assertRejected(await post(asObject), 400, /request\.object/)
    const unknown = JSON.stringify(GOOD).replace('"spec":{', `"spec":{"x-deep":${deep},`)
    const answer = await post(unknown)
    assert.equal(answer.status, 200, answer.body.slice(0, 200))
    assert.equal(JSON.parse(answer.body).response.patchType, 'JSONPatch')
  })

  it('answers a huge string under the limit and 413 over it', async () => {
    const huge = (size: number) =>
      review((r) => {
        r.request.object.metadata.annotations = { big: 'x'.repeat(size) }
        return r
      })
    const under = await post(huge(LIMIT - 8 * 1024))
    assert.equal(under.status, 200)
    assert.equal(JSON.parse(under.body).response.patchType, 'JSONPatch')
    await assertRejected(await post(huge(LIMIT + 1)), 413, /exceeds the limit/)
  })

  it('answers 413 to a Content-Length over the limit without waiting for the body', async () => {
    const head = `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT * 4}\r\nConnection: close\r\n\r\n`
    await assertRejected(await exchange(head, ['{"apiVersion":']), 413, /exceeds the limit/)
  })

  it('answers 413 to a chunked body that grows over the limit', async () => {
    const head =
      'POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
    const chunk = Buffer.alloc(64 * 1024, 'a')
    const parts = Array.from({ length: 40 }, () =>
      Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
    )
    await assertRejected(await exchange(head, parts), 413, /exceeds the limit/)
  })

  it('cuts a slow-loris body at the request timeout and serves others meanwhile', async () => {
    const body = JSON.stringify(GOOD)
    const head = `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`
    const drip = body.slice(0, 200).split('')
    const slow = exchange(head, drip, 100) // 20 s of body at this pace; the server's requestTimeout is 1.5 s
    await assertStillServes()
    const answer = await slow
    assert.equal(answer.status, 408, `slow body answered ${answer.status}`)
    await assertStillServes()
  })

  it('answers 415 to a wrong or missing content type', async () => {
    const body = JSON.stringify(GOOD)
    await assertRejected(
      await post(body, 'text/plain'),
      415,
      /Content-Type must be application\/json/,
    )
    await assertRejected(await post(body, 'application/jsonx'), 415, /Content-Type/)
    const head = `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`
    await assertRejected(await exchange(head, [body]), 415, /Content-Type/)
  })
})

describe('serving', () => {
  it('rejects startServer with the listen error when the port is taken, and keeps the first server up', async () => {
    const { app } = createTestApp([SA])
    await assert.rejects(
      startServer({ app, host: '127.0.0.1', port: server.port, logger: memoryLogger() }),
      (error: NodeJS.ErrnoException) => error.code === 'EADDRINUSE',
    )
    const answer = await exchange(
      `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(JSON.stringify(GOOD))}\r\nConnection: close\r\n\r\n`,
      [JSON.stringify(GOOD)],
    )
    assert.equal(answer.status, 200)
  })
})
