/**
 * Smoke tests: run a bundle's recorded input vectors through the model the device actually loaded and
 * compare with the outputs recorded at build time. This is what makes "installed" mean "computes what
 * we shipped" (a truncated, mis-converted or wrong-architecture model fails here, before activation).
 * The agent passes its own inference function, so the check runs on the staged session itself.
 *
 * @example
 * const r = await runSmokeVectors((feeds) => staged.run(feeds), bundle.smoke.vectors, bundle.smoke.tolerance);
 * if (!r.ok) fail('SMOKE_FAILED', r.failures[0].message);
 */

/** A tensor as smoke vectors carry it: dims plus flat row-major data. */
export interface SmokeTensor {
  dims: readonly number[];
  data: ArrayLike<number>;
}

/** One smoke vector (same shape as the definition's `SmokeVector`, read-only here). */
export interface SmokeCase {
  inputs: Record<string, { dims: number[]; data: number[] }>;
  expected: Record<string, { dims: number[]; data: number[] }>;
}

/** The inference function the agent provides. Outputs may be typed arrays (BigInt64Array is accepted too). */
export type SmokeRunner = (feeds: Record<string, { dims: number[]; data: number[] }>) => Promise<Record<string, SmokeTensor | { dims: readonly number[]; data: ArrayLike<bigint> }>>;

/** Why one smoke output failed. */
export type SmokeFailureCode = 'MISSING_OUTPUT' | 'SHAPE_MISMATCH' | 'VALUE_MISMATCH' | 'RUN_ERROR';

/** One failure of a smoke run. */
export interface SmokeFailure {
  /** Index of the vector in the list. */
  vector: number;
  /** Output name, absent for RUN_ERROR. */
  output?: string;
  code: SmokeFailureCode;
  message: string;
}

/** Result of `compareOutputs`. */
export interface CompareResult {
  ok: boolean;
  /** Largest |expected - actual| over all compared elements (Infinity if a value is NaN). */
  maxAbsDiff: number;
  failures: Array<Omit<SmokeFailure, 'vector'>>;
}

/**
 * Compares expected outputs with actual ones: every expected output must exist, with the same dims,
 * and every element within `tolerance` (absolute). Extra actual outputs are ignored.
 *
 * @example
 * compareOutputs({ y: { dims: [1, 2], data: [0.5, 1] } }, { y: { dims: [1, 2], data: new Float32Array([0.5, 1.00001]) } }, 1e-4).ok // true
 */
export function compareOutputs(
  expected: Record<string, { dims: readonly number[]; data: ArrayLike<number> }>,
  actual: Record<string, { dims: readonly number[]; data: ArrayLike<number | bigint> }>,
  tolerance: number,
): CompareResult {
  const failures: CompareResult['failures'] = [];
  let maxAbsDiff = 0;
  for (const [name, want] of Object.entries(expected)) {
    const got = Object.hasOwn(actual, name) ? actual[name] : undefined;
    if (!got) {
      failures.push({ output: name, code: 'MISSING_OUTPUT', message: `output ${name} missing (model gave ${Object.keys(actual).join(', ') || 'nothing'})` });
      continue;
    }
    if (!sameDims(want.dims, got.dims) || want.data.length !== got.data.length) {
      failures.push({ output: name, code: 'SHAPE_MISMATCH', message: `output ${name}: expected dims [${want.dims}] (${want.data.length} values), got [${got.dims}] (${got.data.length})` });
      continue;
    }
    let worst = 0;
    let worstAt = -1;
    for (let i = 0; i < want.data.length; i++) {
      // NaN must never pass, and Math.max would otherwise swallow it.
      const diff = Math.abs(Number(got.data[i]) - want.data[i]);
      const d = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff;
      if (d > worst) {
        worst = d;
        worstAt = i;
      }
    }
    maxAbsDiff = Math.max(maxAbsDiff, worst);
    if (worst > tolerance) {
      failures.push({
        output: name,
        code: 'VALUE_MISMATCH',
        message: `output ${name}[${worstAt}]: expected ${want.data[worstAt]}, got ${Number(got.data[worstAt])} (|diff| ${worst} > ${tolerance})`,
      });
    }
  }
  return { ok: failures.length === 0, maxAbsDiff, failures };
}

/**
 * Runs every smoke vector through `run` and compares the outputs. Never throws for a failing model:
 * an inference error is reported as RUN_ERROR so the agent gets a verdict to report.
 *
 * @example
 * const r = await runSmokeVectors(async (feeds) => toPlain(await session.run(toOrtFeeds(feeds))), vectors, 1e-4);
 * r.ok; r.maxAbsDiff; r.failures;
 */
export async function runSmokeVectors(
  run: SmokeRunner,
  vectors: readonly SmokeCase[],
  tolerance: number,
): Promise<{ ok: boolean; maxAbsDiff: number; failures: SmokeFailure[] }> {
  const failures: SmokeFailure[] = [];
  let maxAbsDiff = 0;
  for (const [index, vector] of vectors.entries()) {
    let outputs: Awaited<ReturnType<SmokeRunner>>;
    try {
      outputs = await run(vector.inputs);
    } catch (err) {
      failures.push({ vector: index, code: 'RUN_ERROR', message: `vector ${index}: ${err instanceof Error ? err.message : String(err)}` });
      continue;
    }
    const result = compareOutputs(vector.expected, outputs, tolerance);
    maxAbsDiff = Math.max(maxAbsDiff, result.maxAbsDiff);
    for (const f of result.failures) failures.push({ vector: index, ...f, message: `vector ${index}: ${f.message}` });
  }
  return { ok: failures.length === 0, maxAbsDiff, failures };
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === Number(b[i]));
}
