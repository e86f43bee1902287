/**
 * Typed errors for sketch operations. Merging two sketches that were not built on the same layout
 * (bin edges, category list, latency buckets) would silently produce nonsense, so it throws instead.
 *
 * @example
 * try { mergeNumericSketches(a, b); }
 * catch (e) { if (e instanceof SketchMismatchError && e.code === 'edges_mismatch') skipWindow(); }
 */

/** Why two sketches cannot be combined, or why a sketch/layout is invalid. */
export type SketchErrorCode =
  | 'edges_mismatch'
  | 'categories_mismatch'
  | 'kind_mismatch'
  | 'features_mismatch'
  | 'outputs_mismatch'
  | 'buckets_mismatch'
  | 'k_mismatch'
  | 'invalid_edges'
  | 'invalid_layout'
  | 'invalid_input';

/** Base class: `code` says what went wrong, for callers that branch on it (e.g. `e.code === 'invalid_edges'`). */
export class SketchError extends Error {
  override readonly name: string = 'SketchError';
  constructor(
    readonly code: SketchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown by merges when the two operands were built on different layouts. */
export class SketchMismatchError extends SketchError {
  override readonly name = 'SketchMismatchError';
}
