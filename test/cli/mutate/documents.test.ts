// Unit tests for mutate's pure parts: reading manifest documents, and the hint for a misspelt role annotation.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseDocuments } from '../../../cli/mutate/documents.ts'
import { annotationHint } from '../../../cli/mutate/report.ts'

describe('hints', () => {
  test('annotationHint names role-like annotations under another key', () => {
    assert.equal(annotationHint({ 'api.vultr.com/role': 'x' }), '')
    assert.match(annotationHint({ 'api.vultr.com/roles': 'x' }), /"api\.vultr\.com\/roles"/)
  })
})

describe('parseDocuments', () => {
  test('flattens a List with items and keeps a kind that only ends in List', () => {
    const text = [
      'apiVersion: v1\nkind: List\nitems:\n  - kind: ServiceAccount\n    metadata: {name: a}',
      'apiVersion: example.com/v1\nkind: IPAllowList\nmetadata: {name: office}\nspec: {cidrs: [10.0.0.0/8]}',
    ].join('\n---\n')
    assert.deepEqual(parseDocuments(text, 'in.yaml'), [
      { kind: 'ServiceAccount', metadata: { name: 'a' } },
      {
        apiVersion: 'example.com/v1',
        kind: 'IPAllowList',
        metadata: { name: 'office' },
        spec: { cidrs: ['10.0.0.0/8'] },
      },
    ])
  })
})
