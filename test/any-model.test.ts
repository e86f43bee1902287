// Models nobody here designed the loop for, through the whole loop with a real agent process: a
// stateful VAD-shaped model (float32 frame, int64 scalar sample rate, float32 [2,1,128] state; a
// probability and the next state out), a model with two outputs of different shapes, and an opset-9
// CNN optimized without labels. Each is
// pushed, bundled from a `tensor` definition, deployed, called through the local API, and (the VAD)
// sends drift statistics on its definition's summaries to the server.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq, sql } from 'drizzle-orm';
import * as ort from 'onnxruntime-node';
import { api, type AgentProcess, waitFor } from '../agent/testing/harness.ts';
import { decodeWav, encodeWav } from '../agent/runtime/wav.ts';
import { mulberry32 } from '../protocol/sketch/random.ts';
import { statsWindows } from '../server/db/schema.ts';
import { runCli } from './helpers/cli.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { statefulVadModel } from '../server/onnx/vad-shaped-model.ts';
import { opset9Cnn, twoHeadModel } from './helpers/odd-models.ts';

const VAD_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'vad-demo');

function frame(seed: number, amplitude: number): number[] {
  const rand = mulberry32(seed);
  return Array.from({ length: 512 }, () => Math.fround((rand() * 2 - 1) * amplitude));
}

/** The model run directly, the state carried by hand: what the agent must answer. */
async function directChain(frames: number[][]): Promise<number[]> {
  const s = await ort.InferenceSession.create(statefulVadModel());
  let state: ort.Tensor = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
  const probs: number[] = [];
  for (const f of frames) {
    const out = await s.run({ input: new ort.Tensor('float32', Float32Array.from(f), [1, 512]), sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []), state });
    probs.push((out.output.data as Float32Array)[0]);
    state = out.stateN as ort.Tensor;
  }
  await s.release();
  return probs;
}

describe('any model: raw-tensor bundles on a real agent', { timeout: 150_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let port = 0;
  let deviceId = '';

  const cli = (...args: string[]) => lab.cli(...args);
  const activeModel = async () => {
    const d = (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
    return d.updateState === 'active' ? `${d.reported?.active?.model?.name}@${d.reported?.active?.model?.version}` : `${d.updateState}: ${JSON.stringify(d.reported?.lastError ?? null)}`;
  };

  let lab: PlaneWithAgent;
  before(async () => {
    lab = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-any-model-' });
    ({ cp, dir, env, agent, port, deviceId } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  test('stateful VAD: mixed input types, sr pinned, state carried per session, smoke.bin, statistics on frame RMS', async () => {
    await writeFile(path.join(dir, 'vad.onnx'), statefulVadModel());
    await cli('models', 'push', path.join(dir, 'vad.onnx'), '--name', 'vad');
    // The reference: frame RMS and the speech decision on frames like the ones the device will see.
    const refFrames = Array.from({ length: 200 }, (_, i) => frame(1000 + i, 0.1 + (i % 10) / 10));
    const ref = refFrames.map((f) => ({ frame_rms: Math.sqrt(f.reduce((a, v) => a + v * v, 0) / f.length), outputs: { predictedClass: 1, confidence: 0.6 } }));
    const posted = await cp.api('POST', '/api/v1/models/vad/versions/1/reference', { json: { rows: ref, numClasses: 2 } });
    assert.equal(posted.status, 201, JSON.stringify(posted.body));

    const built = await cli('bundles', 'build', 'vad@1', '--def', VAD_DEF);
    assert.deepEqual(built.files.map((f: { path: string }) => f.path).sort(), ['bundle.json', 'model.onnx', 'smoke.bin']);
    assert.deepEqual(Object.keys(built.definition.reference.layout.features), ['frame_rms']);
    await cli('deploy', 'vad@1', '--device', deviceId);
    await waitFor(async () => (await activeModel()) === 'vad@1', 'vad@1 active (its smoke test passed on the device)', 60_000).catch(async (e) => assert.fail(`${e.message}: ${await activeModel()}`));

    const frames = [frame(1, 0.5), frame(2, 0.9), frame(3, 0.2)];
    const expected = await directChain(frames);
    // Agent-carried state: one session key across calls.
    for (const [i, f] of frames.entries()) {
      const r = await api(port, 'POST', '/v1/predict', { inputs: { input: { dims: [1, 512], data: f } }, session: 'mic-1' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(Math.abs(r.body.outputs.output.data[0] - expected[i]) < 1e-5, `call ${i}: ${r.body.outputs.output.data[0]} vs ${expected[i]}`);
      assert.deepEqual(Object.keys(r.body.outputs), ['output'], 'the state output is the agent\'s business, not in the answer');
      assert.equal(r.body.predictions[0].label, expected[i] >= 0.5 ? 'speech' : 'silence');
      assert.equal(r.body.predictions[0].score, r.body.outputs.output.data[0]);
    }
    assert.notEqual(expected[1], (await directChain([frames[1]]))[0], 'the state changes the answer, so carrying it is tested');
    // Another session starts from the initial state; so does a call without a session.
    const fresh = await api(port, 'POST', '/v1/predict', { inputs: { input: { dims: [1, 512], data: frames[1] } }, session: 'mic-2' });
    assert.ok(Math.abs(fresh.body.outputs.output.data[0] - (await directChain([frames[1]]))[0]) < 1e-5);
    // A caller carrying the state itself sends it.
    const own = await api(port, 'POST', '/v1/predict', { inputs: { input: { dims: [1, 512], data: frames[0] }, state: { dims: [2, 1, 128], data: new Array(256).fill(0) } } });
    assert.ok(Math.abs(own.body.outputs.output.data[0] - expected[0]) < 1e-5);

    // WAV (PCM16 and float32): cut into 512-sample frames, the state carried frame to frame; the
    // last frame is zero-padded. One prediction per frame, outputs stacked on a frame axis.
    const audio = [...frames[0], ...frames[1], ...frames[2].slice(0, 300)];
    for (const pcm16 of [true, false]) {
      const wav = encodeWav(audio, 16000, pcm16);
      const samples = Array.from(decodeWav(wav).samples);
      const cut = [samples.slice(0, 512), samples.slice(512, 1024), [...samples.slice(1024), ...new Array(1536 - samples.length).fill(0)]];
      const want = await directChain(cut);
      const r = await api(port, 'POST', '/v1/predict', wav, { 'content-type': 'audio/wav', 'x-session-id': `wav-${pcm16}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.outputs.output.dims, [3, 1, 1]);
      assert.equal(r.body.predictions.length, 3);
      want.forEach((p, i) => assert.ok(Math.abs(r.body.outputs.output.data[i] - p) < 1e-5, `${pcm16 ? 'pcm16' : 'float32'} frame ${i}: ${r.body.outputs.output.data[i]} vs ${p}`));
    }
    const rate = await api(port, 'POST', '/v1/predict', encodeWav(audio, 8000, true), { 'content-type': 'audio/wav' });
    assert.equal(rate.status, 400);
    assert.match(rate.body.error.message, /8000 Hz; this model takes 16000 Hz/);

    // Bad input: the pinned sample rate, a wrong frame length, an unknown input.
    const pinned = await api(port, 'POST', '/v1/predict', { inputs: { input: { dims: [1, 512], data: frames[0] }, sr: { dims: [], data: [8000] } } });
    assert.equal(pinned.status, 400);
    assert.match(pinned.body.error.message, /"sr" is pinned by the bundle/);
    const short = await api(port, 'POST', '/v1/predict', { inputs: { input: { dims: [1, 256], data: frames[0].slice(0, 256) } } });
    assert.equal(short.status, 400);
    assert.match(short.body.error.message, /dim 1 must be 512/);

    // Optimized without labels on unlabelled frames (an .npy: the usual data for a third-party
    // model): a three-input model, so the variant is compared with its parent on named feeds, sr
    // pinned and the state carried from frame to frame as the definition says.
    const { zipSync } = await import('fflate');
    const { encodeNpy } = await import('../server/datasets/npy.ts');
    const evalFrames = Array.from({ length: 40 }, (_, i) => frame(5000 + i, 0.05 + (i % 8) / 8));
    await writeFile(path.join(dir, 'unlabelled.npy'), encodeNpy({ dtype: 'float32', shape: [40, 512], data: evalFrames.flat() }));
    assert.equal((await cli('datasets', 'push', path.join(dir, 'unlabelled.npy'), '--name', 'vad-unlabelled')).version.kind, 'tensors');
    const opt = await runCli(['--json', 'optimize', 'vad@1', '--quantize', 'int8', '--eval', 'vad-unlabelled@1'], env);
    assert.equal(opt.code, 0, opt.stderr);
    const optimized = JSON.parse(opt.stdout);
    assert.deepEqual([optimized.version.ref, optimized.report.inputs, optimized.report.samples], ['vad@2', 'dataset', 40]);
    assert.ok(optimized.report.comparison.maxAbsOutputDiff < 0.05, JSON.stringify(optimized.report.comparison));
    // Evaluated on a labelled tensor dataset (.npz: the frames and a target per frame).
    const evalProbs = await directChain(evalFrames);
    await writeFile(
      path.join(dir, 'frames.npz'),
      zipSync({
        'input.npy': encodeNpy({ dtype: 'float32', shape: [40, 512], data: evalFrames.flat() }),
        'label.npy': encodeNpy({ dtype: 'float32', shape: [40], data: evalProbs }),
      }),
    );
    const pushed = await cli('datasets', 'push', path.join(dir, 'frames.npz'), '--name', 'vad-frames');
    assert.deepEqual(pushed.version.columns.map((c: { name: string; role: string }) => `${c.name}:${c.role}`), ['input:feature', 'label:label']);
    const evaluated = await cli('models', 'evaluate', 'vad@2', '--dataset', 'vad-frames@1');
    assert.equal(evaluated.report.samples, 40);
    assert.ok(evaluated.report.baselineMetrics.rmse < 1e-5, `fp32 VAD reproduces its own chain on the device's terms: rmse ${evaluated.report.baselineMetrics.rmse}`);
    assert.ok(evaluated.report.metrics.rmse < 0.05, `int8 VAD rmse against the fp32 chain ${evaluated.report.metrics.rmse}`);

    // Statistics on the definition's summary, accepted by the server: one row per JSON request (5
    // answered) and one per frame of each WAV (2 × 3 frames); refused requests leave none.
    const sent = frames.length + 2 + 2 * 3;
    const rows = async () => Number((await cp.plane.db.select({ n: sql<number>`coalesce(sum(${statsWindows.rows}), 0)` }).from(statsWindows).where(eq(statsWindows.deviceId, deviceId)))[0].n);
    await waitFor(async () => (await rows()) === sent, `${sent} rows of statistics on the server (WAV frames included)`, 30_000).catch(async (e) => assert.fail(`${e.message}: ${await rows()}`));
    const drift = await cli('drift', 'vad@1', '--window', '1h');
    assert.deepEqual(drift.features.map((f: { feature: string }) => f.feature), ['frame_rms']);
    assert.equal(drift.features[0].n, sent);
  });

  test('two outputs of different shapes, both returned as they are', async () => {
    await writeFile(path.join(dir, 'two.onnx'), twoHeadModel());
    await cli('models', 'push', path.join(dir, 'two.onnx'), '--name', 'two-head');
    const defDir = path.join(dir, 'two-head-def');
    await import('node:fs/promises').then((fs) => fs.mkdir(defDir));
    await writeFile(path.join(defDir, 'bundle.json'), JSON.stringify({ name: 'two-head', preprocess: { type: 'tensor', dims: { batch: 1 } }, postprocess: { task: 'outputs' } }));
    await cli('bundles', 'build', 'two-head@1', '--def', defDir);
    await cli('deploy', 'two-head@1', '--device', deviceId);
    await waitFor(async () => (await activeModel()) === 'two-head@1', 'two-head@1 active', 60_000).catch(async (e) => assert.fail(`${e.message}: ${await activeModel()}`));

    const x = Array.from({ length: 32 }, (_, i) => Math.fround(Math.sin(i)));
    const s = await ort.InferenceSession.create(twoHeadModel());
    const direct = await s.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 16]) });
    await s.release();
    const r = await api(port, 'POST', '/v1/predict', { inputs: { x: { dims: [2, 16], data: x } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.outputs.box.dims, [2, 4]);
    assert.deepEqual(r.body.outputs.scores.dims, [2, 2, 3]);
    (r.body.outputs.scores.data as number[]).forEach((v, i) => assert.ok(Math.abs(v - (direct.scores.data as Float32Array)[i]) < 1e-5));
    (r.body.outputs.box.data as number[]).forEach((v, i) => assert.ok(Math.abs(v - (direct.box.data as Float32Array)[i]) < 1e-5));
  });
  test('an opset-9 CNN: optimized without labels (lifted to opset 13 for per-channel int8), bundled and served', async () => {
    await writeFile(path.join(dir, 'old.onnx'), opset9Cnn());
    await cli('models', 'push', path.join(dir, 'old.onnx'), '--name', 'old-cnn');
    const opt = await runCli(['--json', 'optimize', 'old-cnn@1', '--quantize', 'int8', '--per-channel'], env);
    assert.equal(opt.code, 0, opt.stderr);
    const out = JSON.parse(opt.stdout);
    assert.equal(out.report.inputs, 'generated');
    assert.deepEqual([out.version.recipe.opsetUpgrade.from, out.version.recipe.opsetUpgrade.to], [9, 13]);
    const defDir = path.join(dir, 'old-cnn-def');
    await import('node:fs/promises').then((fs) => fs.mkdir(defDir));
    await writeFile(path.join(defDir, 'bundle.json'), JSON.stringify({ name: 'old-cnn', preprocess: { type: 'tensor', dims: { batch: 1 } }, postprocess: { task: 'classification', topK: 2 } }));
    await cli('bundles', 'build', 'old-cnn@2', '--def', defDir);
    await cli('deploy', 'old-cnn@2', '--device', deviceId);
    await waitFor(async () => (await activeModel()) === 'old-cnn@2', 'old-cnn@2 (int8, opset 13) active', 60_000).catch(async (e) => assert.fail(`${e.message}: ${await activeModel()}`));
    const image = Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.fround(Math.cos(i * 0.37)));
    const r = await api(port, 'POST', '/v1/predict', { inputs: { image: { dims: [1, 3, 16, 16], data: image } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const s = await ort.InferenceSession.create(opset9Cnn());
    const fp32 = (await s.run({ image: new ort.Tensor('float32', Float32Array.from(image), [1, 3, 16, 16]) })).probs.data as Float32Array;
    await s.release();
    (r.body.outputs.probs.data as number[]).forEach((v, i) => assert.ok(Math.abs(v - fp32[i]) < 0.05, `int8 ${v} vs fp32 ${fp32[i]}`));
    assert.equal(r.body.predictions.length, 2);
  });
});
