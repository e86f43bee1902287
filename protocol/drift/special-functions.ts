/**
 * Special functions behind the p-values: log-gamma, the regularized incomplete gamma functions
 * (chi-square tail) and the Kolmogorov distribution (KS tail). Written out here because protocol/
 * has no dependencies; accuracy is ~1e-14 relative in the ranges drift tests use, checked against
 * tabulated critical values in the tests.
 *
 * @example
 * chiSquareSurvival(3.841458820694124, 1) // ≈ 0.05
 * kolmogorovSurvival(1.3580986393225505) // ≈ 0.05
 */

// Lanczos approximation, g = 7, n = 9 (the coefficient set popularised by Numerical Recipes / Boost).
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/**
 * ln Γ(x) for x > 0.
 *
 * @example
 * logGamma(5) // ln 24
 */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError('logGamma needs x > 0');
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

const EPS = 1e-15;
const MAX_ITER = 10_000;

// P(a, x) by its power series; converges quickly for x < a + 1.
function gammaPSeries(a: number, x: number): number {
  let sum = 1 / a;
  let term = sum;
  for (let n = 1; n < MAX_ITER; n++) {
    term *= x / (a + n);
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * EPS) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
}

// Q(a, x) by its continued fraction (modified Lentz); converges quickly for x >= a + 1.
function gammaQContinuedFraction(a: number, x: number): number {
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITER; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/**
 * Regularized lower incomplete gamma P(a, x) = γ(a, x) / Γ(a).
 *
 * @example
 * regularizedGammaP(1, 2) // 1 − e^(−2)
 */
export function regularizedGammaP(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new RangeError('regularizedGammaP needs a > 0, x >= 0');
  if (x === 0) return 0;
  return x < a + 1 ? gammaPSeries(a, x) : 1 - gammaQContinuedFraction(a, x);
}

/**
 * Regularized upper incomplete gamma Q(a, x) = 1 − P(a, x), computed directly in the tail (no cancellation).
 *
 * @example
 * regularizedGammaQ(1, 2) // e^(−2)
 */
export function regularizedGammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new RangeError('regularizedGammaQ needs a > 0, x >= 0');
  if (x === 0) return 1;
  return x < a + 1 ? 1 - gammaPSeries(a, x) : gammaQContinuedFraction(a, x);
}

/**
 * P(χ²_df ≥ x): the chi-square test's p-value.
 *
 * @example
 * chiSquareSurvival(5.991, 2) // ≈ 0.05
 */
export function chiSquareSurvival(x: number, df: number): number {
  if (x <= 0) return 1;
  return regularizedGammaQ(df / 2, x / 2);
}

/**
 * Q_KS(λ) = P(K > λ) for the Kolmogorov distribution K = sup|B(t)| of a Brownian bridge, the
 * limit of √n·D. Uses Q = 2 Σ (−1)^(k−1) e^(−2k²λ²) for λ ≥ 1.18 and the Jacobi-transformed
 * series P = √(2π)/λ Σ e^(−(2k−1)²π²/(8λ²)) below, where the first one converges slowly.
 *
 * @example
 * kolmogorovSurvival(1.358) // ≈ 0.05
 */
export function kolmogorovSurvival(lambda: number): number {
  if (!(lambda > 0)) return 1;
  if (lambda < 1.18) {
    const w = (Math.PI * Math.PI) / (8 * lambda * lambda);
    let s = 0;
    for (let k = 1; k < 100; k++) {
      const term = Math.exp(-(2 * k - 1) * (2 * k - 1) * w);
      s += term;
      if (term < 1e-17) break;
    }
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / lambda) * s));
  }
  let s = 0;
  for (let k = 1; k < 100; k++) {
    const term = Math.exp(-2 * k * k * lambda * lambda);
    s += k % 2 === 1 ? term : -term;
    if (term < 1e-17) break;
  }
  return Math.min(1, Math.max(0, 2 * s));
}
