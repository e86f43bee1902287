// Weight-only int8 (QDQ) models, as `flotilla optimize` makes them (server/optimize is used here, in
// the test only: the agent never imports the server), load and infer in the agent's worker runtime,
// and the session options every agent session starts from fold the int8 weights back to float at load.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { inspectOnnx } from '../../server/onnx/inspect.ts';
import { quantize } from '../../server/optimize/quantize.ts';
import { gemmModel } from '../../test/helpers/models.ts';
import { ModelHost } from './model-host.ts';
import { SESSION_DEFAULTS } from './worker-protocol.ts';

const N_IN = 32;
const N_OUT = 8;
const input = (n: number) => Float32Array.from({ length: n * N_IN }, (_, i) => Math.sin(i * 0.7) * 2);

describe('weight-only int8 (QDQ) models in the agent runtime', () => {
  let dir: string;
  let floatPath: string;
  let qdqPath: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-qdq-'));
    const fp32 = gemmModel({ nIn: N_IN, nOut: N_OUT, seed: 3 });
    const { bytes } = quantize(fp32, { form: 'qdq', perChannel: false });
    assert.ok(inspectOnnx(bytes).opTypes.includes('DequantizeLinear'), 'the fixture really is a QDQ model');
    floatPath = path.join(dir, 'fp32.onnx');
    qdqPath = path.join(dir, 'qdq.onnx');
    await writeFile(floatPath, fp32);
    await writeFile(qdqPath, bytes);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('loads and infers in the worker, within int8 rounding of the float model', async () => {
    const host = new ModelHost();
    await host.start();
    try {
      const q = await host.load(qdqPath);
      const f = await host.load(floatPath);
      const feeds = () => ({ features: { type: 'float32' as const, dims: [4, N_IN], data: input(4) } });
      const got = (await host.infer(feeds(), { handle: q })).logits.data as Float32Array;
      const want = (await host.infer(feeds(), { handle: f })).logits.data as Float32Array;
      assert.equal(got.length, 4 * N_OUT);
      const scale = Math.max(...Array.from(want, Math.abs));
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 0.02 * scale, `logit ${i}: ${got[i]} vs ${want[i]}`);
    } finally {
      await host.stop();
    }
  });

  test('the agent session defaults fold the int8 weights back into a float Gemm at load', async () => {
    const optimizedOps = async (options: ort.InferenceSession.SessionOptions, name: string) => {
      const out = path.join(dir, name);
      // logSeverityLevel 3: onnxruntime warns that an 'all'-optimized graph is hardware specific, which is fine here.
      const s = await ort.InferenceSession.create(qdqPath, { ...options, optimizedModelFilePath: out, logSeverityLevel: 3 });
      await s.release();
      return inspectOnnx(await readFile(out)).opTypes;
    };
    assert.deepEqual(await optimizedOps({ ...SESSION_DEFAULTS }, 'agent.onnx'), ['Gemm']);
    // Control: without the option the weights stay int8 (DequantizeLinear, or fused into MatMulNBits for a Gemm).
    assert.notDeepEqual(await optimizedOps({ graphOptimizationLevel: 'all' }, 'plain.onnx'), ['Gemm']);
  });
});
