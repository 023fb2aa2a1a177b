/**
 * The files users look for: LICENSE is the Apache License 2.0 package.json declares, verbatim; SECURITY.md says how
 * to report and what is supported; every `npm run <script>` the documentation tells a reader to run exists.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { ROOT } from '../support/process.ts'

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8')
const pkg = JSON.parse(read('package.json')) as { license: string; scripts: Record<string, string> }

describe('project files', () => {
  test('LICENSE is the full, unmodified Apache License 2.0 text, as package.json declares', () => {
    assert.equal(pkg.license, 'Apache-2.0')
    // MD5 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte.
    assert.equal(
      createHash('md5')
        .update(readFileSync(join(ROOT, 'LICENSE')))
        .digest('hex'),
      '3b83ef96387f14655fc854ddc3c6bd57',
    )
  })

  test('SECURITY.md says how to report privately and which versions are supported', () => {
    const security = read('SECURITY.md')
    assert.match(security, /^## Supported versions$/m)
    assert.match(security, /^## Reporting a vulnerability$/m)
    assert.match(security, /Report a vulnerability/)
  })

  test('every `npm run <script>` in the README, CONTRIBUTING.md and docs/ is a package.json script', () => {
    const files = [
      'README.md',
      'CONTRIBUTING.md',
      ...readdirSync(join(ROOT, 'docs')).map((f) => join('docs', f)),
    ]
    const named = files.flatMap((file) =>
      [...read(file).matchAll(/\bnpm run (?:-s )?([\w:-]+)/g)].map((m) => [file, m[1] ?? '']),
    )
    assert.ok(named.length >= 20)
    for (const [file, script] of named)
      assert.ok(script && script in pkg.scripts, `${file}: npm run ${script}`)
  })
})
