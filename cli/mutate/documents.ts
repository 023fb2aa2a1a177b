/**
 * Reading and writing manifest streams: YAML (one or more documents) or JSON, `kind: List` flattened.
 * @module
 */
import { parseYamlDocuments, stringifyYamlDocuments } from '../../function/yaml.ts'

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function flatten(documents: readonly unknown[]): unknown[] {
  return documents.flatMap((doc) => {
    // A List has items; a kind that merely ends in "List" (e.g. a custom IPAllowList) is a document of its own.
    if (
      isObject(doc) &&
      typeof doc['kind'] === 'string' &&
      doc['kind'].endsWith('List') &&
      Array.isArray(doc['items'])
    ) {
      return flatten(doc['items'])
    }
    return doc === null || doc === undefined ? [] : [doc]
  })
}

/** Parses a manifest stream (YAML or JSON) into plain JSON objects; every field is kept. */
export function parseDocuments(text: string, source: string): unknown[] {
  const trimmed = text.trimStart()
  try {
    if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
      const parsed: unknown = JSON.parse(text)
      return flatten(Array.isArray(parsed) ? parsed : [parsed])
    }
    return flatten(parseYamlDocuments(text))
  } catch (error) {
    throw new Error(`${source}: cannot parse: ${error instanceof Error ? error.message : error}`)
  }
}

/** Whether a document is a ServiceAccount. */
export function isServiceAccount(doc: unknown): boolean {
  return isObject(doc) && doc['kind'] === 'ServiceAccount'
}

/** ServiceAccounts without a namespace take `namespace` (as `kubectl apply -n` would). */
export function withNamespace(doc: unknown, namespace: string): unknown {
  if (!isObject(doc) || !isObject(doc['metadata']) || doc['metadata']['namespace']) return doc
  return { ...doc, metadata: { ...doc['metadata'], namespace } }
}

/** Prints documents as a YAML stream (`---` between documents) or as JSON (a `List` when several). */
export function formatDocuments(documents: readonly unknown[], output: 'yaml' | 'json'): string {
  if (output === 'json') {
    const value =
      documents.length === 1 ? documents[0] : { apiVersion: 'v1', kind: 'List', items: documents }
    return `${JSON.stringify(value, null, 2)}\n`
  }
  return stringifyYamlDocuments(documents)
}
