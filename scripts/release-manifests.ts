/**
 * Renders the install bundles of a release from the kustomizations, with the image pinned:
 *
 *   npm run release:manifests -- --image ghcr.io/OWNER/irsa-webhook@sha256:<64 hex> [--out DIR] [--allow-tag]
 *
 * writes, to DIR (default `release/`), one plain YAML file per install path, for `kubectl apply -f URL`:
 *
 *   irsa-webhook-knative.yaml                   knative/ + the heal CronJob   scale-to-zero, failurePolicy Ignore
 *   irsa-webhook-knative-production.yaml        knative/overlays/production   min-scale 1, failurePolicy Fail
 *   irsa-webhook-knative-opt-in-label.yaml      knative/ + opt-in-label       scale-to-zero, labelled Pods only, Fail
 *   irsa-webhook-classic.yaml                   deploy/                       2 HTTPS replicas, failurePolicy Fail
 *   irsa-webhook-classic-cert-manager.yaml      deploy/overlays/cert-manager  the same, certificates by cert-manager
 *   irsa-webhook-audit-cronjob.yaml             the heal CronJob alone, an add-on to any of the others
 *   irsa-webhook-policy.yaml                    deploy/policy                 no webhook: admission policies, k8s >= 1.36
 *   irsa-webhook-policy-opt-in-label.yaml       deploy/policy + opt-in-label  the same, labelled Pods only
 *
 * and prints the step each one still needs: none. The knative and classic bundles carry the certificate Job and its
 * renew CronJob (deploy/components/certs, `irsa-webhook certs --job`); cert-manager makes it in the cert-manager
 * bundle; the add-on needs one of the others.
 * The knative bundle is issue 10's default profile for scale-to-zero: failurePolicy Ignore lets a Pod through
 * unmutated when a cold start outlasts the webhook timeout, so the heal CronJob (deploy/components/audit-cronjob)
 * comes with it. The other bundles refuse such Pods (Fail), and take the CronJob as the add-on if wanted.
 * The image must carry a digest (`name@sha256:…` or `name:tag@sha256:…`); a bare tag can be re-pushed, so it is
 * refused unless `--allow-tag` (for a test cluster). Needs `kubectl` (its built-in kustomize; works offline).
 *
 * Exit codes: 0 bundles written; 1 rendering or writing failed (kubectl missing or failing); 2 bad command line
 * (unknown option, malformed image reference, a tag without --allow-tag). The same codes as `irsa-webhook`.
 * @module
 */
import { execFileSync } from 'node:child_process'
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parseQualifiedName } from '@swimlane/docker-reference'
import { EXIT, UsageError } from '../cli/shared/io.ts'
import { VERSION } from '../function/version.ts'
import { parseYamlDocuments } from '../function/yaml.ts'

const ROOT = resolve(import.meta.dirname, '..')
/** The image name the kustomize bases write (their `images:` entry maps `irsa-webhook` to it). */
const BASE_IMAGE = 'registry.example.com/irsa-webhook'

interface Bundle {
  /** The release asset's file name. */
  readonly file: string
  /** The kustomization it is rendered from, relative to the repository root. */
  readonly kustomization: string
  /** Components added to it (as a user adds them to `components:`), relative to the repository root. */
  readonly components: readonly string[]
  /** Only the objects of these components (an add-on bundle); the kustomization just places them. */
  readonly componentsOnly: boolean
  readonly summary: string
  /** False for policy mode: no workload, so no image to pin (docs/policy.md). */
  readonly image?: false
  /** What is left to do after `kubectl apply -f`. */
  readonly afterApply: string
}

const AUDIT_CRONJOB = 'deploy/components/audit-cronjob'
const OPT_IN_LABEL = 'deploy/components/opt-in-label'
const NO_STEP_POLICY = 'nothing: the API server applies the policies itself (docs/policy.md)'
const NO_STEP_CERT_MANAGER = 'nothing: cert-manager issues the certificate and injects caBundle'
const NO_STEP_CERTS =
  'nothing: the Job irsa-webhook-certs makes the certificate and caBundle, the CronJob irsa-webhook-certs-renew renews it'

export const BUNDLES: readonly Bundle[] = [
  {
    file: 'irsa-webhook-knative.yaml',
    kustomization: 'knative',
    components: [AUDIT_CRONJOB],
    componentsOnly: false,
    summary:
      'Knative (Kourier YAML install), scale-to-zero, failurePolicy Ignore, with the heal CronJob',
    afterApply: NO_STEP_CERTS,
  },
  {
    file: 'irsa-webhook-knative-production.yaml',
    kustomization: 'knative/overlays/production',
    components: [],
    componentsOnly: false,
    summary: 'Knative (Kourier YAML install), min-scale 1, failurePolicy Fail',
    afterApply: NO_STEP_CERTS,
  },
  {
    file: 'irsa-webhook-knative-opt-in-label.yaml',
    kustomization: 'knative',
    components: [OPT_IN_LABEL],
    componentsOnly: false,
    summary:
      'Knative (Kourier YAML install), scale-to-zero, only Pods labelled api.vultr.com/irsa: "true", failurePolicy Fail',
    afterApply: NO_STEP_CERTS,
  },
  {
    file: 'irsa-webhook-classic.yaml',
    kustomization: 'deploy',
    components: [],
    componentsOnly: false,
    summary: 'classic Deployment, 2 HTTPS replicas, failurePolicy Fail',
    afterApply: NO_STEP_CERTS,
  },
  {
    file: 'irsa-webhook-classic-cert-manager.yaml',
    kustomization: 'deploy/overlays/cert-manager',
    components: [],
    componentsOnly: false,
    summary: 'classic Deployment, certificates issued by cert-manager (>= 1.0, cainjector enabled)',
    afterApply: NO_STEP_CERT_MANAGER,
  },
  {
    file: 'irsa-webhook-audit-cronjob.yaml',
    kustomization: 'deploy',
    components: [AUDIT_CRONJOB],
    componentsOnly: true,
    summary:
      'the heal CronJob alone (irsa-webhook audit --heal --events --job every 5 minutes, its own ServiceAccount and ClusterRole)',
    afterApply:
      'nothing: an add-on, applied after one of the other bundles (irsa-webhook-knative.yaml already has it)',
  },
  {
    file: 'irsa-webhook-policy.yaml',
    kustomization: 'deploy/policy',
    components: [],
    componentsOnly: false,
    image: false,
    summary:
      'policy mode, Kubernetes >= 1.36: MutatingAdmissionPolicy + ValidatingAdmissionPolicies, no webhook process',
    afterApply: NO_STEP_POLICY,
  },
  {
    file: 'irsa-webhook-policy-opt-in-label.yaml',
    kustomization: 'deploy/policy',
    components: [OPT_IN_LABEL],
    componentsOnly: false,
    image: false,
    summary: 'policy mode, Kubernetes >= 1.36, only Pods labelled api.vultr.com/irsa: "true"',
    afterApply: NO_STEP_POLICY,
  },
]

/** The pinned image: `name@digest`, or `name:tag` when a tag was allowed. */
interface PinnedImage {
  readonly name: string
  readonly digest: string | undefined
  readonly tag: string | undefined
  readonly ref: string
}

/** Parses REF (Docker's reference grammar, @swimlane/docker-reference); a UsageError says what is wrong. */
function pinImage(ref: string, allowTag: boolean): PinnedImage {
  let parsed: ReturnType<typeof parseQualifiedName>
  try {
    parsed = parseQualifiedName(ref)
  } catch (error) {
    const lower = lowercaseName(ref)
    throw new UsageError(
      `--image ${JSON.stringify(ref)} is not an image reference (${(error as Error).message}); ${lower ? `did you mean ${lower}? (repository names are lower case: ghcr.io/<owner>/<repo> lower-cased)` : 'expected REGISTRY/NAME@sha256:<64 hex digits>'}`,
    )
  }
  const name = parsed.domain ? `${parsed.domain}/${parsed.repository}` : String(parsed.repository)
  if (parsed.digest !== undefined)
    return { name, digest: parsed.digest, tag: undefined, ref: `${name}@${parsed.digest}` }
  if (parsed.tag === undefined)
    throw new UsageError(
      `--image ${JSON.stringify(ref)} has neither a digest nor a tag (it would mean :latest); expected ${name}@sha256:<64 hex digits>`,
    )
  if (!allowTag)
    throw new UsageError(
      `--image ${JSON.stringify(ref)} is pinned by tag only, and a tag can be pushed again; give the digest (${name}@sha256:<64 hex digits>), or --allow-tag for a test install`,
    )
  return { name, digest: undefined, tag: parsed.tag, ref: `${name}:${parsed.tag}` }
}

/** REF with its registry and repository lower-cased (tag and digest kept), when that is a valid reference. */
function lowercaseName(ref: string): string | undefined {
  const at = ref.indexOf('@')
  const nameTag = at < 0 ? ref : ref.slice(0, at)
  const tagAt = nameTag.indexOf(':', nameTag.lastIndexOf('/') + 1)
  const name = tagAt < 0 ? nameTag : nameTag.slice(0, tagAt)
  const candidate = `${name.toLowerCase()}${ref.slice(name.length)}`
  if (candidate === ref) return undefined
  try {
    parseQualifiedName(candidate)
    return candidate
  } catch {
    return undefined
  }
}

/**
 * Renders `kustomization` (YAML text) with `kubectl kustomize` in a scratch copy of deploy/ and knative/
 * (kustomize only loads files below the kustomization's root); `files` are written into the copy first.
 */
export function renderKustomization(
  kustomization: string,
  files: Readonly<Record<string, string>> = {},
): string {
  const scratch = mkdtempSync(join(tmpdir(), 'irsa-kustomize-'))
  try {
    for (const dir of ['deploy', 'knative'])
      cpSync(join(ROOT, dir), join(scratch, dir), { recursive: true })
    for (const [file, text] of Object.entries(files)) writeFileSync(join(scratch, file), text)
    writeFileSync(join(scratch, 'kustomization.yaml'), kustomization)
    return execFileSync('kubectl', ['kustomize', scratch], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

/** One bundle's YAML: the kustomization with the image replaced, under a header saying what it is. */
function renderBundle(bundle: Bundle, image: PinnedImage): string {
  const pin = image.digest !== undefined ? `digest: ${image.digest}` : `newTag: "${image.tag}"`
  const rendered = renderKustomization(
    [
      `resources: [${bundle.kustomization}]`,
      `components: [${bundle.components.join(', ')}]`,
      'images:',
      `  - name: ${BASE_IMAGE}`,
      `    newName: ${image.name}`,
      `    ${pin}`,
      '',
    ].join('\n'),
  )
  const yaml = bundle.componentsOnly ? componentObjects(rendered, bundle.components) : rendered
  const from = [`${bundle.kustomization}/`, ...bundle.components].join(' + ')
  return [
    `# irsa-webhook ${VERSION}: ${bundle.summary}.`,
    `# Rendered from ${from}${bundle.componentsOnly ? ' (only the objects the components add)' : ''} by npm run release:manifests; ${bundle.image === false ? 'no image (nothing runs)' : `image ${image.ref}`}.`,
    `# Install: kubectl apply -f ${bundle.file}`,
    `# Then: ${bundle.afterApply}`,
    yaml,
  ].join('\n')
}

/**
 * The documents of `rendered` (kubectl kustomize output) that `components` add: those whose kind and name one of
 * the components' own manifests declares. Kept as kubectl wrote them.
 */
function componentObjects(rendered: string, components: readonly string[]): string {
  const declared = new Set(
    components.flatMap((dir) =>
      readdirSync(join(ROOT, dir))
        .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
        .flatMap((file) => parseYamlDocuments(readFileSync(join(ROOT, dir, file), 'utf8')))
        .map(objectKey),
    ),
  )
  return rendered
    .split(/^---\n/m)
    .filter((text) => declared.has(objectKey(parseYamlDocuments(text)[0])))
    .join('---\n')
}

const objectKey = (doc: unknown): string => {
  const { kind, metadata } = (doc ?? {}) as { kind?: string; metadata?: { name?: string } }
  return `${kind}/${metadata?.name}`
}

const USAGE = `Usage: npm run release:manifests -- --image REF [--out DIR] [--allow-tag]
  --image REF     the published image, pinned by digest: REGISTRY/NAME@sha256:<64 hex digits>
  --out DIR       where the bundles go (default release/)
  --allow-tag     accept REGISTRY/NAME:TAG without a digest (test installs only)
Exit codes: 0 written, 1 rendering failed, 2 bad command line.`

/** The command: returns the exit code. */
function main(argv: string[]): number {
  const { stdout: out, stderr: err } = process
  let image: PinnedImage
  let dir: string
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        image: { type: 'string' },
        out: { type: 'string', default: 'release' },
        'allow-tag': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    })
    if (values.help) {
      out.write(`${USAGE}\n`)
      return EXIT.ok
    }
    if (values.image === undefined) throw new UsageError('--image is required')
    image = pinImage(values.image, values['allow-tag'])
    dir = resolve(values.out)
  } catch (error) {
    const usage =
      error instanceof UsageError ||
      String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
    err.write(`release-manifests: ${(error as Error).message}\n${usage ? `\n${USAGE}\n` : ''}`)
    return usage ? EXIT.usage : EXIT.failed
  }
  try {
    mkdirSync(dir, { recursive: true })
    for (const bundle of BUNDLES) {
      const text = renderBundle(bundle, image)
      const objects = parseYamlDocuments(text).filter((doc) => doc !== null).length
      writeFileSync(join(dir, bundle.file), text)
      out.write(`wrote ${join(dir, bundle.file)} (${objects} objects)\n`)
    }
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr
    err.write(
      `release-manifests: rendering failed: ${(error as Error).message}${stderr ? `\n${String(stderr)}` : ''}\n`,
    )
    return EXIT.failed
  }
  out.write(
    [
      '',
      `irsa-webhook ${VERSION}, image ${image.ref}. Install one bundle (the last is an add-on to any other):`,
      ...BUNDLES.map((b) => `  kubectl apply -f ${b.file}\n      then ${b.afterApply}`),
      'generate-certs.sh (a release asset too; bash, openssl, kubectl) makes the certificate outside the cluster instead of the Job (docs/deploy.md, docs/knative.md).',
      '',
    ].join('\n'),
  )
  return EXIT.ok
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2))
