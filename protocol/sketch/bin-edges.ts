/**
 * Bin edges and the interval convention every histogram in Flotilla uses.
 *
 * `E` strictly ascending, finite edges `e[0] < … < e[E-1]` define `E + 1` bins:
 *
 * | index   | interval              | name      |
 * | ------- | --------------------- | --------- |
 * | 0       | (-∞, e[0])            | underflow |
 * | i (1…E-1) | [e[i-1], e[i])      | interior  |
 * | E       | [e[E-1], +∞)          | overflow  |
 *
 * Bins are left-closed, right-open (like numpy's `searchsorted(side='right')`), so a value equal
 * to an edge belongs to the bin that starts there. One convention everywhere is what makes counts
 * from different devices add up exactly.
 *
 * @example
 * binIndex([0, 1, 2], -5) // 0 (underflow)
 * binIndex([0, 1, 2], 0)  // 1 ([0, 1))
 * binIndex([0, 1, 2], 2)  // 3 (overflow, [2, +∞))
 */
import { SketchError } from './errors.ts';

/**
 * Index of the bin holding `x` (see the table above). Binary search: O(log E).
 * `x` must be finite; callers count NaN/±Infinity separately.
 */
export function binIndex(edges: readonly number[], x: number): number {
  // Number of edges <= x, i.e. the first index whose edge is > x.
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Throws `SketchError('invalid_edges')` unless `edges` is a non-empty array of finite numbers in
 * strictly ascending order.
 *
 * @example
 * assertValidEdges([0, 0.5, 1]); // ok
 * assertValidEdges([1, 1]);      // throws
 */
export function assertValidEdges(edges: readonly number[]): void {
  const reason = edgesProblem(edges);
  if (reason) throw new SketchError('invalid_edges', reason);
}

/**
 * Why `edges` is not a valid edge list, or `null` when it is.
 *
 * @example
 * edgesProblem([0, 2, 1]) // 'edges must be strictly ascending (edge 2)'
 */
export function edgesProblem(edges: readonly number[]): string | null {
  if (!Array.isArray(edges) || edges.length === 0) return 'edges must be a non-empty array';
  for (let i = 0; i < edges.length; i++) {
    if (typeof edges[i] !== 'number' || !Number.isFinite(edges[i])) return `edge ${i} is not a finite number`;
    if (i > 0 && !(edges[i] > edges[i - 1])) return `edges must be strictly ascending (edge ${i})`;
  }
  return null;
}

/**
 * Exact element-wise equality (edges come from the same reference, so no tolerance).
 *
 * @example
 * sameEdges(ref.edges, cur.edges) // false → do not compare or merge
 */
export function sameEdges(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);

/**
 * The smallest double greater than `x` (Math.nextUp). Used to close the top reference bin so the
 * reference maximum falls inside the last interior bin rather than in overflow.
 *
 * @example
 * nextUp(1) // 1.0000000000000002
 */
export function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Infinity) return x;
  if (x === 0) return Number.MIN_VALUE; // covers -0 too
  f64[0] = x;
  i64[0] += x > 0 ? 1n : -1n;
  return f64[0];
}
