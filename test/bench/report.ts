/**
 * Printing for the bench: machine info, result rows, ratios and PASS/MISS verdicts.
 * @module
 */
import { cpus, totalmem } from 'node:os'
import { PINNING } from './child.ts'
import type { LoadResult } from './load.ts'

export function machineLines(): string[] {
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  return [
    `node ${process.version} (${process.execPath})`,
    `cpu: ${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform}/${process.arch}`,
    PINNING
      ? 'pinning: servers on CPU 0, load generator (autocannon) and fake kube-apiserver on CPU 1 (taskset)'
      : 'pinning: none (taskset or a second CPU is missing); figures are noisier',
  ]
}

export const fixed = (value: number, digits = 2) =>
  Number.isFinite(value) ? value.toFixed(digits) : '-'
const pad = (text: string, width: number) => text.padStart(width)

/** One side's result over several rounds: medians of the rounds' figures, sums of the counts. */
export interface RoundsResult extends LoadResult {
  /** Server CPU time (user + system) per answered review, median of the rounds, in µs. */
  readonly cpuUs: number
  /** ServiceAccount GETs the fake kube-apiserver served per answered review, over all rounds. */
  readonly getsPerRequest: number
}

export function loadHeader(): string {
  return [
    'run'.padEnd(34),
    pad('req/s', 8),
    pad('p50 ms', 7),
    pad('p99 ms', 7),
    pad('errors', 6),
    pad('CPU µs/req', 10),
    pad('GETs/req', 8),
  ].join(' ')
}

export function loadRow(label: string, result: RoundsResult): string {
  return [
    label.padEnd(34),
    pad(fixed(result.rps, 0), 8),
    pad(fixed(result.p50), 7),
    pad(fixed(result.p99), 7),
    pad(String(result.errors), 6),
    pad(fixed(result.cpuUs, 0), 10),
    pad(fixed(result.getsPerRequest), 8),
  ].join(' ')
}

/** ours/floor: req/s as the median of the rounds' ratios (each round runs both back to back), the rest of medians. */
export function ratioRow(
  label: string,
  rpsRatio: number,
  ours: RoundsResult,
  floor: RoundsResult,
): string {
  return [
    label.padEnd(34),
    `req/s ${fixed(rpsRatio)}x`,
    `p50 ${fixed(ours.p50 / floor.p50)}x`,
    `p99 ${fixed(ours.p99 / floor.p99)}x`,
    `CPU/req ${fixed(ours.cpuUs / floor.cpuUs)}x`,
  ].join('  ')
}

export interface Target {
  readonly name: string
  readonly ratio: number
  readonly limit: number
  /** 'min': ratio must be >= limit; 'max': ratio must be <= limit. */
  readonly kind: 'min' | 'max'
  readonly detail: string
}

export function verdict(target: Target): string {
  const pass = target.kind === 'min' ? target.ratio >= target.limit : target.ratio <= target.limit
  const sign = target.kind === 'min' ? '>=' : '<='
  return `${pass ? 'PASS' : 'MISS'}  ${target.name}: ${fixed(target.ratio)}x (target ${sign} ${target.limit}x) ${target.detail}`
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}
