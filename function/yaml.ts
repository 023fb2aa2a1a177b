/**
 * YAML streams as plain JSON values, losslessly: every field survives, known to Kubernetes' typed models or not
 * (client-node's `loadAllYaml` maps known kinds onto its model and drops the rest). Pure.
 * @module
 */
import { parseAllDocuments, stringify } from 'yaml'

/** Parses a multi-document YAML text; throws with the first syntax error (line and column) of any document. */
export function parseYamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text).map((document) => {
    const [first] = document.errors
    if (first !== undefined) throw new Error(first.message)
    return document.toJS()
  })
}

/** Prints values as a YAML stream, `---` between documents. */
export function stringifyYamlDocuments(documents: readonly unknown[]): string {
  return documents.map((document) => stringify(document, { lineWidth: 0 })).join('---\n')
}
