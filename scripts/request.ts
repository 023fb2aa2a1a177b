/**
 * Posts an AdmissionReview to a running webhook and prints the answer with its patch decoded.
 * Usage: npm run request -- [review.json] [--url http://127.0.0.1:8080/mutate]
 * @module
 */
import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
const urlFlag = args.indexOf('--url')
const base = urlFlag >= 0 ? args[urlFlag + 1] : 'http://127.0.0.1:8080/mutate'
const file = args.find((arg, index) => !arg.startsWith('--') && index !== urlFlag + 1)
const path = file ?? new URL('../examples/admission-review.json', import.meta.url).pathname
const url = new URL(base ?? '')
url.searchParams.set('timeout', '10s')

const response = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: readFileSync(path, 'utf8'),
})
const text = await response.text()
console.log(`POST ${url} (${path}) → HTTP ${response.status}`)
if (!response.ok) {
  console.log(text)
  process.exit(1)
}
const review = JSON.parse(text) as { response: { patch?: string; [key: string]: unknown } }
const { patch, ...rest } = review.response
console.log(JSON.stringify(rest, null, 2))
if (patch !== undefined) {
  console.log('patch (decoded):')
  console.log(JSON.stringify(JSON.parse(Buffer.from(patch, 'base64').toString('utf8')), null, 2))
} else {
  console.log('no patch')
}
