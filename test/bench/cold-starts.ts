/**
 * Cold starts for `npm run bench`: spawn → first /mutate answer with a patch (which includes the first
 * ServiceAccount GET), median of `runs` per side, the sides taking turns going first. Sides: ours as the image
 * runs it (start flags, warmed compile cache, in-cluster credentials: the target), the floor, and two
 * informational rows: ours without the compile cache, and ours with `KUBECONFIG` (the @kubernetes/client-node
 * path, compile cache on: what a kubeconfig costs).
 * @module
 */

import { freePort } from '../support/process.ts'
import { coldStart } from './child.ts'
import { fixed, median } from './report.ts'
import { type Environment, FLOOR, floorEnv, OURS, oursEnv, type Scheme } from './setup.ts'

const SIDES = ['ours', 'floor', 'noCache', 'kubeconfig'] as const
type Side = (typeof SIDES)[number]

const LABELS: Record<Side, string> = {
  ours: 'ours (in-cluster)',
  floor: 'floor',
  noCache: 'ours (no compile cache)',
  kubeconfig: 'ours (KUBECONFIG)',
}

/** Medians in ms. */
export type ColdStarts = Readonly<Record<Side, number>>

function command(env: Environment, side: Side, scheme: Scheme, port: number) {
  const settings = { scheme, ttlSeconds: 10, port }
  if (side === 'floor') return { program: FLOOR, vars: floorEnv(env, settings) }
  const lookup = side === 'kubeconfig' ? ('kubeconfig' as const) : ('in-cluster' as const)
  const vars = oursEnv(env, { ...settings, lookup, compileCache: side !== 'noCache' })
  return { program: OURS, vars }
}

/** Runs the cold starts of one scheme, prints one line per side and returns the medians. */
export async function coldStarts(
  env: Environment,
  scheme: Scheme,
  body: string,
  runs: number,
): Promise<ColdStarts> {
  const times: Record<Side, number[]> = { ours: [], floor: [], noCache: [], kubeconfig: [] }
  for (let run = 0; run < runs; run += 1) {
    const order = [...SIDES.slice(run % SIDES.length), ...SIDES.slice(0, run % SIDES.length)]
    for (const side of order) {
      const port = await freePort()
      const { program, vars } = command(env, side, scheme, port)
      const url = `${scheme}://127.0.0.1:${port}/mutate?timeout=10s`
      times[side].push(await coldStart(program, vars, url, body))
    }
  }
  const result = Object.fromEntries(SIDES.map((side) => [side, median(times[side])])) as ColdStarts
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ')
  for (const side of SIDES) {
    console.log(
      `cold start ${scheme.padEnd(5)} ${LABELS[side].padEnd(23)} median ${result[side].toFixed(0)} ms [${list(times[side])}], ${fixed(result[side] / result.floor)}x floor`,
    )
  }
  return result
}
