/**
 * Prepares the Helm chart of a release, with the image pinned, for `helm package` and `helm push`:
 *
 *   npm run release:chart -- --image ghcr.io/OWNER/irsa-webhook@sha256:<64 hex> [--out DIR]
 *
 * copies charts/irsa-webhook to DIR/irsa-webhook (default `release-chart/`) and writes the image's repository and
 * digest into its values.yaml (comments kept), so `helm install` of the published chart runs exactly the image the
 * release pushed, as the bundles of `npm run release:manifests` do. The chart's version and appVersion are
 * package.json's version already (scripts/sync-version.ts; the release workflow checks the tag against it). The
 * release workflow then runs `helm package` and `helm push` to oci://ghcr.io/<owner>/charts.
 *
 * The image must carry a digest (`name@sha256:…`); a tag is refused: the published chart is a release.
 *
 * Exit codes: 0 written; 1 copying or writing failed; 2 bad command line (unknown option, malformed image reference,
 * no digest). The same codes as `npm run release:manifests`.
 * @module
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parseDocument } from 'yaml'
import { EXIT, UsageError } from '../cli/shared/io.ts'
import { VERSION } from '../function/version.ts'
import { pinImage } from './release-manifests.ts'

const ROOT = resolve(import.meta.dirname, '..')
export const CHART_DIR = 'charts/irsa-webhook'

/** Writes the chart, image pinned, to `out`/irsa-webhook; returns that directory. */
export function writeReleaseChart(image: { name: string; digest: string }, out: string): string {
  const dir = join(out, 'irsa-webhook')
  rmSync(dir, { recursive: true, force: true })
  cpSync(join(ROOT, CHART_DIR), dir, { recursive: true })
  const chart = parseDocument(readFileSync(join(dir, 'Chart.yaml'), 'utf8'))
  for (const field of ['version', 'appVersion'])
    if (String(chart.get(field)) !== VERSION)
      throw new Error(
        `${CHART_DIR}/Chart.yaml ${field} is ${chart.get(field)}, not package.json's ${VERSION} (run node scripts/sync-version.ts)`,
      )
  const values = parseDocument(readFileSync(join(dir, 'values.yaml'), 'utf8'))
  values.setIn(['image', 'repository'], image.name)
  values.setIn(['image', 'digest'], image.digest)
  writeFileSync(join(dir, 'values.yaml'), values.toString({ lineWidth: 0 }))
  return dir
}

const USAGE = `Usage: npm run release:chart -- --image REF [--out DIR]
  --image REF     the published image, pinned by digest: REGISTRY/NAME@sha256:<64 hex digits>
  --out DIR       where the chart directory goes (default release-chart/; the chart is DIR/irsa-webhook)
Exit codes: 0 written, 1 writing failed, 2 bad command line.`

function main(argv: string[]): number {
  const { stdout: out, stderr: err } = process
  let image: { name: string; digest: string }
  let dir: string
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        image: { type: 'string' },
        out: { type: 'string', default: 'release-chart' },
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
    const pinned = pinImage(values.image, true)
    if (pinned.digest === undefined)
      throw new UsageError(
        `--image ${JSON.stringify(values.image)} has no digest; a published chart pins its image: ${pinned.name}@sha256:<64 hex digits>`,
      )
    image = { name: pinned.name, digest: pinned.digest }
    dir = resolve(values.out)
  } catch (error) {
    const usage =
      error instanceof UsageError ||
      String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
    err.write(`release-chart: ${(error as Error).message}\n${usage ? `\n${USAGE}\n` : ''}`)
    return usage ? EXIT.usage : EXIT.failed
  }
  try {
    const chart = writeReleaseChart(image, dir)
    out.write(
      `wrote ${chart}: chart ${VERSION}, image ${image.name}@${image.digest}\n` +
        `next: helm package ${chart} && helm push irsa-webhook-${VERSION}.tgz oci://ghcr.io/<owner>/charts\n`,
    )
    return EXIT.ok
  } catch (error) {
    err.write(`release-chart: ${(error as Error).message}\n`)
    return EXIT.failed
  }
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2))
