/**
 * The training loop the MLP and the CNN trainers share: each epoch visits the samples in a new order
 * (shuffled with the trainer's `rng`, so a seed gives the same weights), in batches; the trainer adds a
 * batch's per-sample gradients into `g` (zeroed here first), they are averaged, and Adam takes one
 * step with the cosine-decayed learning rate. Per batch, not per sample, so each trainer's inner loop
 * stays its own monomorphic code.
 *
 * @example
 * const history = trainMinibatches({ params, n, epochs: 8, batchSize: 16, lr: 0.01, rng }, (samples, g, tally) => {
 *   for (let k = 0; k < samples.length; k++) { ... add sample samples[k]'s gradient into g, its loss to tally.loss, 1 to tally.correct if right ... }
 * });
 */
import { Adam, cosineLr } from './adam.ts';
import { range, type Rng } from './random.ts';

export interface TrainHistory {
  epoch: number;
  loss: number;
  accuracy: number;
}

export interface MinibatchOptions {
  /** The parameters Adam updates in place. */
  params: Float64Array[];
  /** Number of samples; they are called by index 0 … n−1. */
  n: number;
  epochs: number;
  batchSize: number;
  /** Peak learning rate (cosine decay over all steps). */
  lr: number;
  /** Shuffles each epoch's order; the trainer may draw from it too (augmentation), in call order. */
  rng: Rng;
  onEpoch?: (h: TrainHistory) => void;
}

/** What a batch adds to its epoch: each sample's loss, and 1 for each sample classified right. */
export interface EpochTally {
  loss: number;
  correct: number;
}

/**
 * Runs the epochs; `batch` adds the gradients of `samples` (indices) into `g` and each one's loss and
 * hit into `tally`. Returns each epoch's mean loss and accuracy.
 */
export function trainMinibatches(o: MinibatchOptions, batch: (samples: Int32Array, g: Float64Array[], tally: EpochTally) => void): TrainHistory[] {
  const { params, n, epochs, batchSize, rng } = o;
  const g = params.map((p) => new Float64Array(p.length));
  const opt = new Adam(params);
  const order = range(n);
  const steps = epochs * Math.ceil(n / batchSize);
  const history: TrainHistory[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    rng.shuffle(order);
    const tally: EpochTally = { loss: 0, correct: 0 };
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      for (const gi of g) gi.fill(0);
      batch(order.subarray(start, end), g, tally);
      const scale = 1 / (end - start);
      for (const gi of g) for (let k = 0; k < gi.length; k++) gi[k] *= scale;
      opt.step(g, cosineLr(o.lr, step++, steps));
    }
    const h = { epoch, loss: tally.loss / n, accuracy: tally.correct / n };
    history.push(h);
    o.onEpoch?.(h);
  }
  return history;
}
