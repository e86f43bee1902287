/**
 * Adam (Kingma & Ba) over a fixed list of flat parameter arrays, updated in place. Shared by the
 * MLP and CNN trainers; gradients arrive as arrays of the same shapes, already averaged over the batch.
 *
 * @example
 * const opt = new Adam([w, b]);
 * opt.step([gw, gb], 0.01);
 */
export class Adam {
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  private t = 0;

  constructor(
    private readonly params: Float64Array[],
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }

  step(grads: Float64Array[], lr: number): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps } = this;
    // Bias correction folded into the step size (the paper's "efficient" form).
    const a = (lr * Math.sqrt(1 - b2 ** this.t)) / (1 - b1 ** this.t);
    for (let k = 0; k < this.params.length; k++) {
      const p = this.params[k];
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= (a * m[i]) / (Math.sqrt(v[i]) + eps);
      }
    }
  }
}

/** Cosine decay from `lr` to `lr·floor` over `total` steps: big steps first, a calm finish. */
export function cosineLr(lr: number, step: number, total: number, floor = 0.05): number {
  const p = Math.min(1, step / Math.max(1, total));
  return lr * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/** Numerically stable softmax cross-entropy for one row: writes dL/dlogits into `grad`, returns the loss. */
export function softmaxXent(logits: Float64Array, offset: number, classes: number, label: number, grad: Float64Array, gOffset: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c]);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(logits[offset + c] - max);
  const logSum = Math.log(sum) + max;
  for (let c = 0; c < classes; c++) {
    grad[gOffset + c] = Math.exp(logits[offset + c] - logSum) - (c === label ? 1 : 0);
  }
  return logSum - logits[offset + label];
}

/** Index of the largest value in `x[offset … offset+n)`. */
export function argmax(x: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let c = 1; c < n; c++) if (x[offset + c] > x[offset + best]) best = c;
  return best;
}
