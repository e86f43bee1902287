/**
 * The CNN's layers with hand-written forward and backward passes over preallocated buffers (see
 * cnn.ts for the architecture and the measurements behind it). Internal to the trainer.
 */
import { IMAGE_CHANNELS, IMAGE_SIZE } from './synthetic-shapes.ts';

const S0 = IMAGE_SIZE; // 32
const S1 = S0 / 2; // 16 after the first pool
const S2 = S1 / 2; // 8 after the second pool

/**
 * `flatten`: MaxPool2 → Flatten → Gemm(c2·8·8 → 3). `globalmax`: GlobalMaxPool → Flatten →
 * Gemm(c2 → 3) — "is this pattern anywhere in the picture", position-free.
 */
export type CnnHead = 'flatten' | 'globalmax';

export function headSize(head: CnnHead, c2: number): number {
  return head === 'flatten' ? c2 * S2 * S2 : c2;
}

const P0 = S0 + 2; // padded widths: borders stay 0, so the conv loops need no bounds checks
const P1 = S1 + 2;

/**
 * 3×3 convolution, pad 1: out[oc, y, x] = b[oc] + Σ w[oc,ic,ky,kx]·inp[ic, y+ky, x+kx] where `inp`
 * is already zero-padded to (H+2)×(W+2). The nine taps of one (oc, ic) pair sit in locals, so each
 * output element is read and written once per input channel rather than once per tap.
 */
function conv3x3(inp: Float64Array, cin: number, H: number, W: number, w: Float64Array, b: Float64Array, cout: number, out: Float64Array): void {
  const HW = H * W;
  const PW = W + 2;
  const PHW = (H + 2) * PW;
  for (let oc = 0; oc < cout; oc++) {
    const o = oc * HW;
    out.fill(b[oc], o, o + HW);
    for (let ic = 0; ic < cin; ic++) {
      const k = (oc * cin + ic) * 9;
      const w0 = w[k], w1 = w[k + 1], w2 = w[k + 2];
      const w3 = w[k + 3], w4 = w[k + 4], w5 = w[k + 5];
      const w6 = w[k + 6], w7 = w[k + 7], w8 = w[k + 8];
      const i0 = ic * PHW;
      for (let y = 0; y < H; y++) {
        const r0 = i0 + y * PW;
        const r1 = r0 + PW;
        const r2 = r1 + PW;
        const row = o + y * W;
        for (let x = 0; x < W; x++) {
          out[row + x] +=
            w0 * inp[r0 + x] + w1 * inp[r0 + x + 1] + w2 * inp[r0 + x + 2] +
            w3 * inp[r1 + x] + w4 * inp[r1 + x + 1] + w5 * inp[r1 + x + 2] +
            w6 * inp[r2 + x] + w7 * inp[r2 + x + 1] + w8 * inp[r2 + x + 2];
        }
      }
    }
  }
}

/**
 * Fused ReLU + 2×2 max-pool: out = max(0, window max), written into `out` with `pad` zeros around
 * each channel (1 when the next layer is a conv, 0 for the head); idx = winning position in `inp`,
 * −1 when the output is 0 (no gradient flows back).
 */
function reluPool(inp: Float64Array, C: number, H: number, W: number, out: Float64Array, pad: number, idx: Int32Array): void {
  const h = H >> 1;
  const w = W >> 1;
  const ow = w + 2 * pad;
  const ohw = (h + 2 * pad) * ow;
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = c * H * W + 2 * y * W + 2 * x;
        let best = p;
        if (inp[p + 1] > inp[best]) best = p + 1;
        if (inp[p + W] > inp[best]) best = p + W;
        if (inp[p + W + 1] > inp[best]) best = p + W + 1;
        const j = (c * h + y) * w + x;
        const q = c * ohw + (y + pad) * ow + x + pad;
        if (inp[best] > 0) {
          out[q] = inp[best];
          idx[j] = best;
        } else {
          out[q] = 0;
          idx[j] = -1;
        }
      }
    }
  }
}

/** Fused ReLU + global max-pool per channel: out[c] = max(0, max over the map); idx as in `reluPool`. */
function reluGlobalMax(inp: Float64Array, C: number, HW: number, out: Float64Array, idx: Int32Array): void {
  for (let c = 0; c < C; c++) {
    let best = c * HW;
    for (let p = best + 1; p < (c + 1) * HW; p++) if (inp[p] > inp[best]) best = p;
    if (inp[best] > 0) {
      out[c] = inp[best];
      idx[c] = best;
    } else {
      out[c] = 0;
      idx[c] = -1;
    }
  }
}

/**
 * Copies one normalised NCHW image into the padded input buffer, applying one of the 8 symmetries of
 * the square (t = 0 is the identity). Flips and quarter turns do not change which shape it is, so
 * training sees up to 8 variants of each image: far less over-fitting for free.
 */
function loadImage(x: Float32Array, off: number, t: number, xp: Float64Array): void {
  const N = S0 - 1;
  for (let c = 0; c < IMAGE_CHANNELS; c++) {
    const src = off + c * S0 * S0;
    const dst = c * P0 * P0;
    for (let y = 0; y < S0; y++) {
      for (let xx = 0; xx < S0; xx++) {
        let sy = y;
        let sx = xx;
        if (t & 4) { const tmp = sy; sy = sx; sx = tmp; } // transpose
        if (t & 2) sy = N - sy; // vertical flip
        if (t & 1) sx = N - sx; // horizontal flip
        xp[dst + (y + 1) * P0 + xx + 1] = x[src + sy * S0 + sx];
      }
    }
  }
}

/** Scratch buffers and parameters for one network; forward and backward reuse them for every image. */
export class Net {
  readonly xp = new Float64Array(IMAGE_CHANNELS * P0 * P0);
  readonly a1: Float64Array;
  readonly p1: Float64Array; // padded for conv2
  readonly i1: Int32Array;
  readonly a2: Float64Array;
  readonly p2: Float64Array;
  readonly i2: Int32Array;
  readonly logits: Float64Array;
  readonly dlogits: Float64Array;
  readonly dp1: Float64Array; // padded like p1
  readonly flat: number;
  /** Dense hidden layer of the head (ReLU), when `dense` > 0: its activations and gradients. */
  readonly hid: Float64Array;
  readonly dhid: Float64Array;
  readonly dp2: Float64Array;

  constructor(
    readonly c1: number,
    readonly c2: number,
    readonly classes: number,
    readonly head: CnnHead,
    readonly params: Float64Array[], // w1 b1 w2 b2 w3 b3 [w4 b4 with a dense layer]
    readonly dense = 0,
  ) {
    this.a1 = new Float64Array(c1 * S0 * S0);
    this.p1 = new Float64Array(c1 * P1 * P1);
    this.i1 = new Int32Array(c1 * S1 * S1);
    this.a2 = new Float64Array(c2 * S1 * S1);
    this.flat = headSize(head, c2);
    this.p2 = new Float64Array(this.flat);
    this.i2 = new Int32Array(this.flat);
    this.logits = new Float64Array(classes);
    this.dlogits = new Float64Array(classes);
    this.dp1 = new Float64Array(c1 * P1 * P1);
    this.hid = new Float64Array(dense);
    this.dhid = new Float64Array(dense);
    this.dp2 = new Float64Array(this.flat);
  }

  /** out[k] = b[k] + Σ w[k, j] · inp[j] for k < rows. */
  private static gemv(w: Float64Array, b: Float64Array, inp: Float64Array, cols: number, rows: number, out: Float64Array, relu: boolean): void {
    for (let k = 0; k < rows; k++) {
      let s = b[k];
      const r = k * cols;
      for (let j = 0; j < cols; j++) s += w[r + j] * inp[j];
      out[k] = relu && s < 0 ? 0 : s;
    }
  }

  /** Forward for the image at `x[off … off+3072)` under symmetry `t`; logits land in `this.logits`. */
  forward(x: Float32Array, off: number, t = 0): void {
    const [w1, b1, w2, b2, w3, b3] = this.params;
    const { c1, c2, classes, flat, p2 } = this;
    loadImage(x, off, t, this.xp);
    conv3x3(this.xp, IMAGE_CHANNELS, S0, S0, w1, b1, c1, this.a1);
    reluPool(this.a1, c1, S0, S0, this.p1, 1, this.i1);
    conv3x3(this.p1, c1, S1, S1, w2, b2, c2, this.a2);
    if (this.head === 'flatten') reluPool(this.a2, c2, S1, S1, p2, 0, this.i2);
    else reluGlobalMax(this.a2, c2, S1 * S1, p2, this.i2);
    if (this.dense) {
      Net.gemv(w3, b3, p2, flat, this.dense, this.hid, true);
      Net.gemv(this.params[6], this.params[7], this.hid, this.dense, classes, this.logits, false);
    } else Net.gemv(w3, b3, p2, flat, classes, this.logits, false);
  }

  /** Gradients of the head's Gemm layers; leaves d loss / d p2 in `this.dp2`. */
  private backwardHead(g: Float64Array[]): void {
    const { classes, flat, p2, dlogits, dp2, dense, hid, dhid } = this;
    const w3 = this.params[4];
    dp2.fill(0);
    // The layer feeding the logits: the dense one when there is one, else w3 straight from p2.
    const [wOut, gwOut, gbOut, inp, nIn] = dense ? [this.params[6], g[6], g[7], hid, dense] : [w3, g[4], g[5], p2, flat];
    const dIn = dense ? dhid : dp2;
    dIn.fill(0);
    for (let k = 0; k < classes; k++) {
      const d = dlogits[k];
      gbOut[k] += d;
      const r = k * nIn;
      for (let j = 0; j < nIn; j++) {
        gwOut[r + j] += d * inp[j];
        dIn[j] += d * wOut[r + j];
      }
    }
    if (!dense) return;
    const [gw3, gb3] = [g[4], g[5]];
    for (let u = 0; u < dense; u++) {
      if (hid[u] <= 0) continue;
      const d = dhid[u];
      gb3[u] += d;
      const r = u * flat;
      for (let j = 0; j < flat; j++) {
        gw3[r + j] += d * p2[j];
        dp2[j] += d * w3[r + j];
      }
    }
  }

  /** Adds this image's gradients (from `this.dlogits`) into `g`; call right after `forward`. */
  backward(g: Float64Array[]): void {
    const w2 = this.params[2];
    const [gw1, gb1, gw2, gb2] = g;
    const { c1, flat, p1, i1, i2, dp1, dp2, xp } = this;
    this.backwardHead(g);
    // Conv2: only positions that won their pool window and were > 0 receive gradient.
    dp1.fill(0);
    const HW1 = S1 * S1;
    const PHW1 = P1 * P1;
    for (let j = 0; j < flat; j++) {
      const pos = i2[j];
      if (pos < 0) continue;
      const d = dp2[j];
      const oc = (pos / HW1) | 0;
      const rem = pos - oc * HW1;
      const y = (rem / S1) | 0;
      const xx = rem - y * S1;
      gb2[oc] += d;
      for (let ic = 0; ic < c1; ic++) {
        const wb = (oc * c1 + ic) * 9;
        const q = ic * PHW1 + y * P1 + xx; // top-left tap in the padded map
        for (let ky = 0; ky < 3; ky++) {
          const qr = q + ky * P1;
          const wr = wb + ky * 3;
          gw2[wr] += d * p1[qr];
          gw2[wr + 1] += d * p1[qr + 1];
          gw2[wr + 2] += d * p1[qr + 2];
          dp1[qr] += d * w2[wr];
          dp1[qr + 1] += d * w2[wr + 1];
          dp1[qr + 2] += d * w2[wr + 2];
        }
      }
    }
    // Conv1: weight and bias gradients only (no gradient into the image).
    const HW0 = S0 * S0;
    const PHW0 = P0 * P0;
    for (let c = 0; c < c1; c++) {
      for (let y = 0; y < S1; y++) {
        for (let xx = 0; xx < S1; xx++) {
          const j = (c * S1 + y) * S1 + xx;
          const pos = i1[j];
          const d = dp1[c * PHW1 + (y + 1) * P1 + xx + 1];
          if (pos < 0 || d === 0) continue;
          const rem = pos - c * HW0;
          const py = (rem / S0) | 0;
          const px = rem - py * S0;
          gb1[c] += d;
          for (let ic = 0; ic < IMAGE_CHANNELS; ic++) {
            const wb = (c * IMAGE_CHANNELS + ic) * 9;
            const q = ic * PHW0 + py * P0 + px;
            for (let ky = 0; ky < 3; ky++) {
              const qr = q + ky * P0;
              const wr = wb + ky * 3;
              gw1[wr] += d * xp[qr];
              gw1[wr + 1] += d * xp[qr + 1];
              gw1[wr + 2] += d * xp[qr + 2];
            }
          }
        }
      }
    }
  }
}

