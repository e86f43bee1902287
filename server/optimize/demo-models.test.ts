// The acceptance checks on the project's own demo models (trained here with server/training): int8
// variants within the quality budget, 50 % pruning that gzip rewards, structured pruning that shrinks
// tensors, and every produced file running the same in onnxruntime-node and onnxruntime-web.
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import { demoImages, demoTabular, type DemoModel } from './demo-fixtures.ts';
import { checkQualityBudget, evaluateModel, evaluateVariant, type ModelEvaluation } from './evaluate.ts';
import { optimizeModel, type OptimizeOptions } from './index.ts';
import { initializerDims, maxAbs, maxAbsDiff, runNode, runWeb } from './test-helpers.ts';

const gz = (b: Uint8Array) => gzipSync(b, { level: 9 }).length;
const NO_TIMING = { latency: false, memory: false } as const;
const INT8: Array<[string, OptimizeOptions]> = [
  ['int8-qdq', { quantize: { form: 'qdq', perChannel: false } }],
  ['int8-qdq-per-channel', { quantize: { form: 'qdq', perChannel: true } }],
  ['int8-integer', { quantize: { form: 'integer', perChannel: false } }],
  ['int8-integer-per-channel', { quantize: { form: 'integer', perChannel: true } }],
];

async function sameInBothRuntimes(bytes: Uint8Array, demo: DemoModel, samples: number): Promise<void> {
  const per = demo.test.sampleShape.reduce((a, b) => a * b, 1);
  const x = demo.test.inputs.subarray(0, samples * per);
  const [n, w] = await Promise.all([runNode(bytes, x, demo.test.sampleShape), runWeb(bytes, x, demo.test.sampleShape)]);
  assert.ok(maxAbsDiff(n.data, w.data) <= 1e-3 * Math.max(1, maxAbs(n.data)), `node vs web ${maxAbsDiff(n.data, w.data)}`);
}

for (const [title, load, expected] of [
  ['demo tabular MLP 8→192→64→3', async () => demoTabular({ testRows: 600 }), { share: 14016 / 14291, weights: ['W1', 'W2', 'W3'] }],
  ['demo shape CNN (conv 8, conv 48, dense 256)', async () => demoImages({ trainImages: 1000, epochs: 6, testImages: 300 }), { share: 16728 / 17043, weights: ['W1', 'W2', 'W3', 'W4'] }],
] as const) {
  describe(title, () => {
    let demo: DemoModel;
    let parent: ModelEvaluation;
    before(async () => {
      demo = await load();
      parent = await evaluateModel(demo.bytes, demo.test, NO_TIMING);
      assert.ok(parent.metrics.accuracy! > 0.9, `demo model accuracy ${parent.metrics.accuracy}`);
    });

    for (const [name, opts] of INT8) {
      it(`${name}: accepted by the quality budget, smaller, same outputs in node and web`, async (t) => {
        const { bytes, report } = await optimizeModel(demo.bytes, opts);
        assert.ok(Math.abs(report.quantizedParamShare - expected.share) < 1e-9, `share ${report.quantizedParamShare}`);
        const ev = await evaluateVariant(bytes, parent, demo.test, NO_TIMING);
        const verdict = checkQualityBudget(ev);
        assert.ok(verdict.accepted, verdict.reasons.join('; '));
        const ratio = demo.bytes.length / bytes.length;
        t.diagnostic(`${demo.bytes.length} → ${bytes.length} bytes (${ratio.toFixed(2)}×), accuracy ${parent.metrics.accuracy} → ${ev.variant.accuracy}, agreement ${ev.agreement}`);
        // The acceptance criterion: the int8 variant `flotilla optimize --quantize int8` makes (weight-only
        // QDQ, one scale per tensor) is ≥ 3.5× smaller with the budget met. One scale per channel costs
        // 4 bytes per output channel, integer compute a few nodes per layer; float32 biases, names and
        // graph structure (~1 KB) stay in every form.
        const minRatio = { qdq: opts.quantize!.perChannel ? 3.2 : 3.5, integer: opts.quantize!.perChannel ? 3.1 : 3.3 }[opts.quantize!.form];
        assert.ok(ratio >= minRatio, `file ratio ${ratio} < ${minRatio}`);
        // Per tensor, each quantized weight is 4× smaller minus one float scale.
        if (!opts.quantize!.perChannel) {
          for (const layer of report.quantization!.layers) assert.ok((layer.params * 4) / (layer.params + 4) >= 3.5 || layer.params < 16);
          assert.deepEqual(report.quantization!.layers.map((l) => l.weight), expected.weights);
        }
        await sameInBothRuntimes(bytes, demo, 40);
      });
    }

    it('50 % unstructured: gzip rewards the zeros; the calibrated variant stays closer to the parent', async (t) => {
      const magnitude = await optimizeModel(demo.bytes, { prune: { sparsity: 0.5, structured: false } });
      const calibrated = await optimizeModel(demo.bytes, { prune: { sparsity: 0.5, structured: false }, calibration: demo.calibration });
      const zeroedBytes = magnitude.report.pruning!.weights.reduce((s, w) => s + Math.floor(w.params / 2) * 4, 0);
      const saved = gz(demo.bytes) - gz(magnitude.bytes);
      const drop = saved / gz(demo.bytes);
      t.diagnostic(`gzip ${gz(demo.bytes)} → ${gz(magnitude.bytes)} bytes (${(drop * 100).toFixed(1)} % drop; ${zeroedBytes} float32 bytes zeroed)`);
      // Scattered zeros are not free for gzip (a 4-byte run costs a match code): about 60 % of the zeroed bytes come back.
      assert.ok(saved >= 0.5 * zeroedBytes, `gzip saved ${saved} of ${zeroedBytes} zeroed bytes`);
      if (demo.test.sampleShape.length > 1) assert.ok(drop >= 0.3, `CNN gzip drop ${drop}`);
      const [evM, evC] = [await evaluateVariant(magnitude.bytes, parent, demo.test, NO_TIMING), await evaluateVariant(calibrated.bytes, parent, demo.test, NO_TIMING)];
      t.diagnostic(`agreement: magnitude ${evM.agreement}, calibrated ${evC.agreement}`);
      assert.ok(evC.agreement > evM.agreement, `agreement: magnitude ${evM.agreement}, calibrated ${evC.agreement}`);
      await sameInBothRuntimes(calibrated.bytes, demo, 20);
    });

    it('50 % structured: the tensors really shrink', async () => {
      const { bytes, report } = await optimizeModel(demo.bytes, { prune: { sparsity: 0.5, structured: true }, calibration: demo.calibration });
      const dims = initializerDims(bytes);
      if (demo.test.sampleShape.length === 1) {
        // Both hidden layers halve; each next layer's inputs follow.
        assert.deepEqual([dims.get('W1'), dims.get('B1'), dims.get('W2'), dims.get('W3')], [[96, 8], [96], [32, 96], [3, 32]]);
      } else {
        // conv1 already has the minimum 8 channels (kept in multiples of 8); conv2 goes 48 → 24, the dense layer 256 → 128.
        assert.deepEqual([dims.get('W1'), dims.get('W2'), dims.get('B2'), dims.get('W3'), dims.get('W4')], [[8, 3, 3, 3], [24, 8, 3, 3], [24], [128, 24], [3, 128]]);
      }
      assert.ok(bytes.length < demo.bytes.length);
      assert.ok(report.sparsity > 0.3, `sparsity ${report.sparsity}`);
      await sameInBothRuntimes(bytes, demo, 20);
    });
  });
}
