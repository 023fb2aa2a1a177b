/**
 * Plans the JSON Patch that gives a pod its Vultr identity. Pure.
 *
 * The patch is a list of small `add` operations against the request's raw object, so fields unknown to this code
 * (native sidecar `restartPolicy`, `resizePolicy`, anything newer) are never touched. It is additive and idempotent:
 * an env var, mount or volume that is already there is kept as the user wrote it, and planning a pod that already
 * carries the identity yields an empty patch (safe with `reinvocationPolicy: IfNeeded`).
 * @module
 */
import type { Identity } from './identity.ts'
import type { Container, Pod, Volume } from './kube-objects.ts'
import { ANNOTATIONS, DEFAULTS, ENV, TOKEN_VOLUME } from './names.ts'

/** RFC 6902 `add` operation; the only kind the webhook emits. */
export interface AddOperation {
  readonly op: 'add'
  readonly path: string
  readonly value: unknown
}

export interface MutationPlan {
  readonly patch: readonly AddOperation[]
  readonly warnings: readonly string[]
  /** Set when the pod must not be mutated at all (e.g. a foreign volume holds our name). */
  readonly blocked?: string
}

/** Container names listed in the pod's `api.vultr.com/skip-containers` annotation (comma-separated). */
function skippedContainers(pod: Pod): ReadonlySet<string> {
  const raw = pod.metadata?.annotations?.[ANNOTATIONS.skipContainers]
  if (raw === undefined) return new Set()
  return new Set(
    raw
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== ''),
  )
}

function tokenVolume(identity: Identity): object {
  return {
    name: TOKEN_VOLUME.name,
    projected: {
      sources: [
        {
          serviceAccountToken: {
            audience: identity.audience,
            expirationSeconds: identity.expirationSeconds,
            path: TOKEN_VOLUME.fileName,
          },
        },
      ],
    },
  }
}

/** A volume of our name is ours when it projects a token for our audience at our file name. */
function isOurVolume(volume: Volume, identity: Identity): boolean {
  return (volume.projected?.sources ?? []).some(
    (source) =>
      source.serviceAccountToken?.path === TOKEN_VOLUME.fileName &&
      (source.serviceAccountToken.audience ?? '') === identity.audience,
  )
}

function wantedEnv(
  identity: Identity,
  present: ReadonlySet<string>,
  tokenFile: string,
): { name: string; value: string }[] {
  const env: { name: string; value: string }[] = [
    { name: ENV.roleArn, value: identity.roleArn },
    { name: ENV.tokenFile, value: tokenFile },
    { name: ENV.regionalEndpoints, value: DEFAULTS.regionalEndpoints },
    { name: ENV.stsEndpoint, value: identity.stsEndpoint },
  ]
  if (
    identity.region !== undefined &&
    !present.has(ENV.region) &&
    !present.has(ENV.defaultRegion)
  ) {
    env.push(
      { name: ENV.region, value: identity.region },
      { name: ENV.defaultRegion, value: identity.region },
    )
  }
  return env.filter((entry) => !present.has(entry.name))
}

/** True for a user's own AWS_ROLE_ARN other than `roleArn` (the webhook keeps it). */
function isOtherRole(
  entry: { readonly name: string; readonly value?: string | undefined },
  roleArn: string,
) {
  return entry.name === ENV.roleArn && entry.value !== roleArn
}

/**
 * The containers (not skipped) whose own AWS_ROLE_ARN differs from `roleArn`: the webhook keeps theirs, so they do
 * not use the ServiceAccount's role (the audit's `role-differs`).
 */
export function containersWithOtherRole(pod: Pod, roleArn: string): string[] {
  const skip = skippedContainers(pod)
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers]
    .filter(
      (container) =>
        !skip.has(container.name) &&
        (container.env ?? []).some((entry) => isOtherRole(entry, roleArn)),
    )
    .map((container) => container.name)
}

function containerWarnings(container: Container, identity: Identity): string[] {
  const warnings: string[] = []
  for (const entry of container.env ?? []) {
    if (isOtherRole(entry, identity.roleArn)) {
      warnings.push(
        `container ${container.name}: keeps its own ${ENV.roleArn}, not the ServiceAccount's`,
      )
    }
    if (entry.name === ENV.accessKeyId) {
      warnings.push(
        `container ${container.name}: static ${ENV.accessKeyId} wins over the injected role`,
      )
    }
  }
  for (const mount of container.volumeMounts ?? []) {
    if (mount.mountPath === TOKEN_VOLUME.mountPath && mount.name !== TOKEN_VOLUME.name) {
      warnings.push(
        `container ${container.name}: volume ${mount.name} is mounted at the token path`,
      )
    }
  }
  return warnings
}

/** Adds `items` to the array at `path`: the whole array when absent, else one `…/-` append per item. */
function appendAll(
  ops: AddOperation[],
  path: string,
  exists: boolean,
  items: readonly object[],
): void {
  if (items.length === 0) return
  if (!exists) {
    ops.push({ op: 'add', path, value: items })
    return
  }
  for (const item of items) ops.push({ op: 'add', path: `${path}/-`, value: item })
}

function planContainer(
  container: Container,
  path: string,
  identity: Identity,
  ops: AddOperation[],
) {
  const mounts = container.volumeMounts ?? []
  // A container that already mounts our volume elsewhere reads the token there: point the env at that path.
  const ownMount = mounts.find((mount) => mount.name === TOKEN_VOLUME.name)
  const tokenFile =
    ownMount === undefined
      ? TOKEN_VOLUME.tokenFile
      : `${ownMount.mountPath.replace(/\/+$/, '')}/${TOKEN_VOLUME.fileName}`
  const present = new Set((container.env ?? []).map((entry) => entry.name))
  appendAll(
    ops,
    `${path}/env`,
    Array.isArray(container.env),
    wantedEnv(identity, present, tokenFile),
  )
  const mounted =
    ownMount !== undefined || mounts.some((mount) => mount.mountPath === TOKEN_VOLUME.mountPath)
  if (!mounted) {
    const mount = { name: TOKEN_VOLUME.name, mountPath: TOKEN_VOLUME.mountPath, readOnly: true }
    appendAll(ops, `${path}/volumeMounts`, Array.isArray(container.volumeMounts), [mount])
  }
}

/**
 * Plans the patch for one pod: the token volume (unless present), then for each init container and container not
 * skipped, the missing env vars and the token mount. User values are never changed; conflicts become warnings.
 */
export function planPodMutation(pod: Pod, identity: Identity): MutationPlan {
  const volumes = pod.spec.volumes
  const existing = volumes?.find((volume) => volume.name === TOKEN_VOLUME.name)
  if (existing !== undefined && !isOurVolume(existing, identity)) {
    return {
      patch: [],
      warnings: [],
      blocked: `volume ${TOKEN_VOLUME.name} already exists and is not the ${identity.audience} token; pod not mutated`,
    }
  }
  const ops: AddOperation[] = []
  if (existing === undefined) {
    appendAll(ops, '/spec/volumes', Array.isArray(volumes), [tokenVolume(identity)])
  }
  const skip = skippedContainers(pod)
  const warnings: string[] = []
  const groups = [
    ['initContainers', pod.spec.initContainers ?? []],
    ['containers', pod.spec.containers],
  ] as const
  for (const [field, containers] of groups) {
    containers.forEach((container, index) => {
      if (skip.has(container.name)) return
      planContainer(container, `/spec/${field}/${index}`, identity, ops)
      warnings.push(...containerWarnings(container, identity))
    })
  }
  return { patch: ops, warnings }
}
