/**
 * Reads the fields of a Pod the webhook uses, checking their types in place. Pure.
 *
 * Unlike a zod object schema, this does not copy the pod: the review's object is checked where it lies and then
 * used as is (patches address it by index). A copy of every container, env var and mount per review was the
 * largest allocation on the hot path, and allocation is what grows a busy webhook's heap (docs/performance.md).
 * Unknown fields are not looked at; a field we read with the wrong type is a 400 naming its path.
 * @module
 */
import type { Pod } from './kube-objects.ts'
import { err, ok, type Result } from './result.ts'

type Json = Record<string, unknown>

class Invalid extends Error {}

const typeOf = (value: unknown) =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value

function fail(path: string, expected: string, value: unknown): never {
  throw new Invalid(`${path}: expected ${expected}, got ${typeOf(value)}`)
}

function object(value: unknown, path: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(path, 'object', value)
  return value as Json
}

function string(value: unknown, path: string): void {
  if (typeof value !== 'string') fail(path, 'string', value)
}

function optionalString(value: unknown, path: string): void {
  if (value !== undefined) string(value, path)
}

/** An optional list (absent or null allowed, as Kubernetes omits empty lists); each item checked. */
function list(value: unknown, path: string, item: (value: Json, path: string) => void): void {
  if (value === undefined || value === null) return
  if (!Array.isArray(value)) fail(path, 'array', value)
  for (let index = 0; index < value.length; index++) {
    const at = `${path}[${index}]`
    item(object(value[index], at), at)
  }
}

function stringMap(value: unknown, path: string): void {
  if (value === undefined || value === null) return
  for (const [key, entry] of Object.entries(object(value, path))) string(entry, `${path}.${key}`)
}

function container(value: Json, path: string): void {
  string(value['name'], `${path}.name`)
  list(value['env'], `${path}.env`, (env, at) => {
    string(env['name'], `${at}.name`)
    optionalString(env['value'], `${at}.value`)
  })
  list(value['volumeMounts'], `${path}.volumeMounts`, (mount, at) => {
    string(mount['name'], `${at}.name`)
    string(mount['mountPath'], `${at}.mountPath`)
  })
}

function volume(value: Json, path: string): void {
  string(value['name'], `${path}.name`)
  if (value['projected'] === undefined) return
  const projected = object(value['projected'], `${path}.projected`)
  list(projected['sources'], `${path}.projected.sources`, (source, at) => {
    if (source['serviceAccountToken'] === undefined) return
    const token = object(source['serviceAccountToken'], `${at}.serviceAccountToken`)
    string(token['path'], `${at}.serviceAccountToken.path`)
    optionalString(token['audience'], `${at}.serviceAccountToken.audience`)
  })
}

function checkPod(value: unknown, path: string): void {
  const pod = object(value, path)
  if (pod['metadata'] !== undefined) {
    const metadata = object(pod['metadata'], `${path}.metadata`)
    for (const key of ['name', 'generateName', 'namespace']) {
      optionalString(metadata[key], `${path}.metadata.${key}`)
    }
    stringMap(metadata['annotations'], `${path}.metadata.annotations`)
    stringMap(metadata['labels'], `${path}.metadata.labels`)
  }
  const spec = object(pod['spec'], `${path}.spec`)
  optionalString(spec['serviceAccountName'], `${path}.spec.serviceAccountName`)
  if (!Array.isArray(spec['containers']))
    fail(`${path}.spec.containers`, 'array', spec['containers'])
  list(spec['containers'], `${path}.spec.containers`, container)
  list(spec['initContainers'], `${path}.spec.initContainers`, container)
  list(spec['volumes'], `${path}.spec.volumes`, volume)
}

/** Checks `value` as a Pod (the fields the webhook reads) and returns it, uncopied, typed; or the first problem. */
export function readPod(value: unknown, path = 'request.object'): Result<Pod, string> {
  try {
    checkPod(value, path)
    return ok(value as Pod)
  } catch (error) {
    if (error instanceof Invalid) return err(error.message)
    throw error
  }
}
