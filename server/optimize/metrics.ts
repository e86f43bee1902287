// Task metrics on plain arrays, shared by evaluation, fairness and importance (and recomputed
// independently in the tests).

/** Index of the largest value of each row of a row-major [n, width] matrix (first one on ties). */
export function argmaxRows(data: ArrayLike<number>, width: number): Int32Array {
  const n = Math.floor(data.length / width);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (data[i * width + c] > data[i * width + best]) best = c;
    out[i] = best;
  }
  return out;
}

export function accuracy(pred: ArrayLike<number>, labels: ArrayLike<number>, rows?: ArrayLike<number>): number {
  const idx = rows ?? { length: labels.length };
  let hit = 0;
  for (let k = 0; k < idx.length; k++) {
    const i = rows ? rows[k] : k;
    if (pred[i] === labels[i]) hit++;
  }
  return idx.length ? hit / idx.length : NaN;
}

/** Fraction of samples on which two prediction vectors agree. */
export function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`agreement: ${a.length} vs ${b.length} predictions`);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return a.length ? same / a.length : NaN;
}

/** confusion[true][predicted]. */
export function confusion(pred: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i];
    const p = pred[i];
    if (t >= 0 && t < classes && p >= 0 && p < classes) m[t][p]++;
  }
  return m;
}

/**
 * Macro-averaged F1 over the classes that occur in the labels or the predictions (scikit-learn's
 * convention); a class with no predicted or no true samples has precision or recall 0.
 */
export function macroF1(pred: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number {
  const m = confusion(pred, labels, classes);
  let sum = 0;
  let count = 0;
  for (let c = 0; c < classes; c++) {
    const tp = m[c][c];
    const actual = m[c].reduce((a, b) => a + b, 0);
    const predicted = m.reduce((a, row) => a + row[c], 0);
    if (actual === 0 && predicted === 0) continue;
    count++;
    const precision = predicted ? tp / predicted : 0;
    const recall = actual ? tp / actual : 0;
    sum += precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  }
  return count ? sum / count : NaN;
}

/** Root mean squared error between two equally long arrays. */
export function rmse(pred: ArrayLike<number>, target: ArrayLike<number>): number {
  if (pred.length !== target.length) throw new Error(`rmse: ${pred.length} predictions vs ${target.length} targets`);
  let s = 0;
  for (let i = 0; i < pred.length; i++) s += (pred[i] - target[i]) ** 2;
  return pred.length ? Math.sqrt(s / pred.length) : NaN;
}

/** p-th percentile (nearest rank) of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
