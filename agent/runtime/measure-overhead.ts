/**
 * What the worker thread costs: a bare `session.run` on the main thread vs `ModelHost.infer`
 * (sequential: one await at a time; pipelined: many in flight), on the 8→3 Gemm model, batch 1.
 * A dev script, not a test: `npx tsx agent/runtime/measure-overhead.ts [requests]`.
 * Like the tests, it builds its model with the project's ONNX builder (test/fixtures).
 */
import * as ort from 'onnxruntime-node';
import { makeFixtures } from '../../test/fixtures/runtime-models.ts';
import { InferenceEngine } from './engine.ts';
import { ModelHost, type ModelHostOptions } from './model-host.ts';

const N = Number(process.argv[2] ?? 20_000);
const fx = await makeFixtures();
const modelPath = await fx.tabular(1);
const row = () => Float32Array.from({ length: 8 }, (_, i) => i * 0.1);

function report(name: string, totalMs: number, n: number, extra = ''): void {
  console.log(`${name.padEnd(60)} ${((totalMs * 1000) / n).toFixed(1).padStart(7)} µs/request  ${(n / (totalMs / 1000)).toFixed(0).padStart(7)} req/s ${extra}`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

// 1. Bare session.run on this thread (what the worker does per request, without the hop).
{
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  for (let i = 0; i < 2000; i++) await session.run({ features: new ort.Tensor('float32', row(), [1, 8]) });
  const t = performance.now();
  for (let i = 0; i < N; i++) await session.run({ features: new ort.Tensor('float32', row(), [1, 8]) });
  report('bare session.run (main thread, awaited)', performance.now() - t, N);
  await session.release();
}

async function hostRuns(label: string, options: ModelHostOptions, window: number): Promise<void> {
  const host = new ModelHost(options);
  await host.start();
  host.activate(await host.load(modelPath));
  const feeds = () => ({ features: { type: 'float32', dims: [1, 8], data: row() } });
  for (let i = 0; i < 2000; i++) await host.infer(feeds());
  const lat: number[] = [];
  const t = performance.now();
  let next = 0;
  // `window` clients, each sending its next request when the previous answer arrives.
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < N) {
        next++;
        const s = performance.now();
        await host.infer(feeds());
        lat.push(performance.now() - s);
      }
    }),
  );
  const total = performance.now() - t;
  lat.sort((a, b) => a - b);
  report(`${label} (${window} in flight)`, total, N, ` latency p50 ${(percentile(lat, 0.5) * 1000).toFixed(0)} µs, p99 ${(percentile(lat, 0.99) * 1000).toFixed(0)} µs`);
  await host.stop();
}

await hostRuns('ModelHost.infer sequential', {}, 1);
await hostRuns('ModelHost.infer pipelined, coalesced', {}, 64);
await hostRuns('ModelHost.infer pipelined, one message each', { coalesce: false }, 64);
await hostRuns('ModelHost.infer pipelined, coalesced, pool 2', { poolSize: 2 }, 64);

// The whole request path: tabular preprocessing + infer + softmax/top-K.
{
  const engine = new InferenceEngine();
  await engine.start();
  const features = Array.from({ length: 8 }, (_, i) => ({ name: `f${i}`, dtype: 'float32' as const }));
  const staged = await engine.stage({
    bundle: { id: 'bnd_measure', version: 1 },
    modelPath,
    preprocess: { type: 'tabular', input: 'features', features },
    postprocess: { softmax: true, topK: 3, task: 'classification', output: 'logits' },
    labels: ['low', 'medium', 'high'],
  });
  engine.activate(staged);
  const req = () => ({ features: { f0: 0, f1: 0.1, f2: 0.2, f3: 0.3, f4: 0.4, f5: 0.5, f6: 0.6, f7: 0.7 } });
  for (let i = 0; i < 2000; i++) await engine.predict(req());
  for (const window of [1, 64]) {
    let next = 0;
    const t = performance.now();
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (next < N) {
          next++;
          await engine.predict(req());
        }
      }),
    );
    report(`InferenceEngine.predict (${window} in flight)`, performance.now() - t, N);
  }
  await engine.stop();
}
await fx.cleanup();
