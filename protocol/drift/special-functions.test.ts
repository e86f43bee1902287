import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chiSquareSurvival, kolmogorovSurvival, logGamma, regularizedGammaP, regularizedGammaQ } from './special-functions.ts';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe('special functions', () => {
  it('logGamma matches factorials and Γ(1/2) = √π', () => {
    close(logGamma(1), 0, 1e-14, 'lnΓ(1)');
    close(logGamma(5), Math.log(24), 1e-13, 'lnΓ(5)');
    close(logGamma(101), 363.73937555556347, 1e-10, 'lnΓ(101)');
    close(logGamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-14, 'lnΓ(1/2)');
  });

  it('regularized gamma: P + Q = 1, and P(1, x) = 1 − e^(−x)', () => {
    for (const [a, x] of [[0.5, 0.1], [1, 2], [3, 10], [50, 45], [50, 60]]) close(regularizedGammaP(a, x) + regularizedGammaQ(a, x), 1, 1e-13, `a=${a} x=${x}`);
    for (const x of [0.01, 0.5, 3, 20]) close(regularizedGammaP(1, x), 1 - Math.exp(-x), 1e-14, `P(1,${x})`);
  });

  it('chi-square tail reproduces tabulated 5 % and 1 % critical values', () => {
    // [df, χ² critical at 0.05, at 0.01] (standard tables).
    const table: Array<[number, number, number]> = [
      [1, 3.841458820694124, 6.634896601021214],
      [2, 5.991464547107979, 9.21034037197618],
      [5, 11.070497693516351, 15.08627246938899],
      [10, 18.307038053275146, 23.209251158954356],
      [30, 43.77297182574219, 50.89218131151707],
    ];
    for (const [df, c05, c01] of table) {
      close(chiSquareSurvival(c05, df), 0.05, 1e-12, `df=${df} 5 %`);
      close(chiSquareSurvival(c01, df), 0.01, 1e-12, `df=${df} 1 %`);
    }
    assert.equal(chiSquareSurvival(0, 3), 1);
  });

  it('Kolmogorov distribution reproduces its critical values on both series branches', () => {
    close(kolmogorovSurvival(1.3580986393225505), 0.05, 1e-12, 'λ 5 %');
    close(kolmogorovSurvival(1.6276236115189657), 0.01, 1e-12, 'λ 1 %');
    close(kolmogorovSurvival(1.2238478702170825), 0.1, 1e-12, 'λ 10 %');
    close(kolmogorovSurvival(0.8275735551899077), 0.5, 1e-12, 'λ median');
    // Continuity where the implementation switches series.
    close(kolmogorovSurvival(1.18 - 1e-12), kolmogorovSurvival(1.18), 1e-10, 'switch');
    assert.equal(kolmogorovSurvival(0), 1);
    assert.ok(kolmogorovSurvival(0.2) > 0.999999);
  });
});
