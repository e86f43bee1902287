// Parsing of the simulator's flags: durations (`10s`, `2m`, `500ms`), shares (`5%`, `0.05`) and drift
// specs (`feature=f3,shift=0.5`). Each parser throws one line naming what was wrong.
import type { DriftSpec } from './inputs.ts';

export class SimOptionError extends Error {
  override name = 'SimOptionError';
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `10s` → 10000; a bare number is seconds. */
export function parseDurationMs(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new SimOptionError(`invalid ${flag}: expected a duration such as 10s, 2m or 500ms, got "${text}"`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']);
}

/** A duration in whole seconds ≥ 1 (the agent's intervals are whole seconds). */
export function parseSeconds(flag: string, text: string): number {
  const ms = parseDurationMs(flag, text);
  if (ms < 1000 || ms % 1000 !== 0) throw new SimOptionError(`invalid ${flag}: must be whole seconds, at least 1s, got "${text}"`);
  return ms / 1000;
}

/** `5%` or `0.05` → 0.05. */
export function parseShare(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(%)?$/.exec(text.trim());
  const v = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
  if (!(v >= 0 && v <= 1)) throw new SimOptionError(`invalid ${flag}: expected a share such as 5% or 0.05, got "${text}"`);
  return v;
}

/** `feature=f3,shift=0.5` (shift in reference standard deviations). */
export function parseDrift(text: string): DriftSpec {
  const fields = new Map<string, string>();
  for (const part of text.split(',')) {
    const [k, v, ...rest] = part.split('=');
    if (!k || v === undefined || rest.length) throw new SimOptionError(`invalid --drift: expected feature=<name>,shift=<number>, got "${text}"`);
    fields.set(k.trim(), v.trim());
  }
  const feature = fields.get('feature');
  const shift = Number(fields.get('shift'));
  if (!feature || !Number.isFinite(shift) || fields.size !== 2) throw new SimOptionError(`invalid --drift: expected feature=<name>,shift=<number>, got "${text}"`);
  return { feature, shift };
}

export function parsePositiveInt(flag: string, text: string, max: number): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new SimOptionError(`invalid ${flag}: expected an integer from 1 to ${max}, got "${text}"`);
  return v;
}
