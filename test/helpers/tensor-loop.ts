// The CLI and agent steps the any-model loop tests share (test/any-model-*.test.ts): one plane with an
// agent, a model pushed from bytes, a definition written to a temp dir, a build + deploy that waits for
// the device to go active, the rows the server has for a version, and a direct onnxruntime run to
// compare answers with.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { waitFor } from '../../agent/testing/harness.ts';
import type { PlaneWithAgent } from './plane-with-agent.ts';

/** Deterministic float32 samples (a sine per sample k, amplitude varying with k). */
export const wave = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 0.37 + k * 1.3) * (0.5 + (k % 5) / 5)));

export function loopSteps(p: PlaneWithAgent) {
  const cli = p.cli;
  const activeModel = async () => {
    const d = (await p.cp.api('GET', `/api/v1/devices/${p.deviceId}`)).body;
    return d.updateState === 'active' ? `${d.reported?.active?.model?.name}@${d.reported?.active?.model?.version}` : `${d.updateState}: ${JSON.stringify(d.reported?.lastError ?? null)}`;
  };
  return {
    cli,
    /** Writes `<name>.onnx` to the temp dir and pushes it as model `name`. */
    async push(name: string, bytes: Uint8Array) {
      const file = path.join(p.dir, `${name}.onnx`);
      await writeFile(file, bytes);
      return cli('models', 'push', file, '--name', name);
    },
    async deploy(ref: string, def: string) {
      const built = await cli('bundles', 'build', ref, '--def', def);
      await cli('deploy', built.id, '--device', p.deviceId);
      await waitFor(async () => (await activeModel()) === ref, `${ref} active`, 60_000).catch(async (e) => assert.fail(`${e.message}: ${await activeModel()}`));
      return built;
    },
    /** Rows the server has in windows of `ref` (the drift report's count). */
    rowsOnServer: async (ref: string) => (await cli('drift', ref, '--window', '1h')).rows as number,
    async writeDef(name: string, def: object) {
      const dir = path.join(p.dir, `${name}-def`);
      await mkdir(dir);
      await writeFile(path.join(dir, 'bundle.json'), JSON.stringify({ name, ...def }));
      return dir;
    },
    async run(model: Uint8Array, feeds: Record<string, ort.Tensor>) {
      const s = await ort.InferenceSession.create(model);
      const out = await s.run(feeds);
      await s.release();
      return out;
    },
  };
}
