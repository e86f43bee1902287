/**
 * The drift features of a `tensor` bundle: per request, one number per summary the definition names
 * (a frame's RMS level, an output's mean…), computed from the values the caller sent or the model
 * answered. The agent sketches them like tabular features; a reference dataset gives the same rows.
 *
 * @example
 * summaryRow({ frame_rms: { input: 'input', stat: 'rms' } }, { input: { data: [0.5, -0.5] } }, {})
 * // { frame_rms: 0.5 }
 */
import type { z } from 'zod';
import type { TensorSummary } from './definition.ts';
import { fromFloat16Bits } from './float16.ts';

type Summary = z.infer<typeof TensorSummary>;
type Values = { data: ArrayLike<number | bigint | boolean> };

/** Named summaries of one request; a summary whose tensor is missing or empty is left out (counted as null). */
export function summaryRow(summaries: Readonly<Record<string, Summary>>, inputs: Readonly<Record<string, unknown>>, outputs: Readonly<Record<string, Values>> | undefined): Record<string, number> {
  const row: Record<string, number> = {};
  for (const [name, s] of Object.entries(summaries)) {
    const source = 'input' in s ? inputs[s.input] : outputs?.[s.output];
    const data = source !== null && typeof source === 'object' ? (source as Partial<Values>).data : undefined;
    if (!data || typeof data.length !== 'number' || data.length === 0) continue;
    // float16 inputs travel as bit patterns (onnxruntime's form): summarize the numbers they stand for.
    const v = statOf(s.stat, (source as { type?: string }).type === 'float16' ? fromFloat16Bits(data as ArrayLike<number>) : data);
    if (Number.isFinite(v)) row[name] = v;
  }
  return row;
}

/** One statistic of a flat list of values. */
export function statOf(stat: Summary['stat'], data: ArrayLike<unknown>): number {
  let sum = 0;
  let sq = 0;
  let min = Infinity;
  let max = -Infinity;
  const n = data.length;
  for (let i = 0; i < n; i++) {
    const v = Number(data[i]);
    sum += v;
    sq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  switch (stat) {
    case 'rms':
      return Math.sqrt(sq / n);
    case 'mean':
      return sum / n;
    case 'std':
      return Math.sqrt(Math.max(0, sq / n - (sum / n) ** 2));
    case 'min':
      return min;
    case 'max':
      return max;
    case 'absmax':
      return Math.max(Math.abs(min), Math.abs(max));
  }
}
