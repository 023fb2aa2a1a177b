/**
 * Cold starts for `npm run bench`: spawn → first /mutate answer with a patch (which includes the first
 * ServiceAccount GET), median of `runs` per side, the sides taking turns going first. Sides: ours on the
 * production path (in-cluster credentials), the floor, and ours with `KUBECONFIG` (the @kubernetes/client-node
 * path, informational: it shows what a kubeconfig costs; targets use the in-cluster row).
 * @module
 */
import { coldStart } from './child.ts'
import { fixed, median } from './report.ts'
import {
  type Environment,
  FLOOR_ENTRY,
  floorEnv,
  freePort,
  OURS_ENTRY,
  oursEnv,
  type Scheme,
} from './setup.ts'

const SIDES = ['ours', 'floor', 'kubeconfig'] as const
type Side = (typeof SIDES)[number]

export interface ColdStarts {
  /** Medians in ms. */
  readonly ours: number
  readonly floor: number
  readonly kubeconfig: number
}

function command(env: Environment, side: Side, scheme: Scheme, port: number) {
  const settings = { scheme, ttlSeconds: 10, port }
  if (side === 'floor') return { entry: FLOOR_ENTRY, vars: floorEnv(env, settings) }
  const lookup = side === 'ours' ? ('in-cluster' as const) : ('kubeconfig' as const)
  return { entry: OURS_ENTRY, vars: oursEnv(env, { ...settings, lookup }) }
}

/** Runs the cold starts of one scheme, prints one line per side and returns the medians. */
export async function coldStarts(
  env: Environment,
  scheme: Scheme,
  body: string,
  runs: number,
): Promise<ColdStarts> {
  const times: Record<Side, number[]> = { ours: [], floor: [], kubeconfig: [] }
  for (let run = 0; run < runs; run += 1) {
    const order = [...SIDES.slice(run % SIDES.length), ...SIDES.slice(0, run % SIDES.length)]
    for (const side of order) {
      const port = await freePort()
      const { entry, vars } = command(env, side, scheme, port)
      const url = `${scheme}://127.0.0.1:${port}/mutate?timeout=10s`
      times[side].push(await coldStart(entry, vars, url, body))
    }
  }
  const result = {
    ours: median(times.ours),
    floor: median(times.floor),
    kubeconfig: median(times.kubeconfig),
  }
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ')
  const line = (label: string, side: Side) =>
    `cold start ${scheme.padEnd(5)} ${label.padEnd(17)} median ${result[side].toFixed(0)} ms [${list(times[side])}], ${fixed(result[side] / result.floor)}x floor`
  console.log(line('ours (in-cluster)', 'ours'))
  console.log(line('floor', 'floor'))
  console.log(line('ours (KUBECONFIG)', 'kubeconfig'))
  return result
}
