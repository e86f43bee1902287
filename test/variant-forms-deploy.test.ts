// Every form the optimizer writes (int8 QDQ per tensor, per channel, integer compute, pruned) of both
// demo models is bundled and deployed to a real agent process, and each passes the smoke test on the
// device: the builder records smoke outputs with the device's own session options, and the tolerance
// covers the error it measured (a real CNN's default int8 variant once failed with |diff| 4e-4 > 1e-4).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { api, waitFor } from '../agent/testing/harness.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { DEVICE_SESSION_OPTIONS } from '../firmware-bundles/session-options.ts';
import { demoImages, demoTabular } from '../server/optimize/demo-fixtures.ts';
import { optimizeModel, type OptimizeOptions } from '../server/optimize/index.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const FORMS: Array<[string, OptimizeOptions]> = [
  ['int8-qdq', { quantize: { form: 'qdq', perChannel: false } }],
  ['int8-qdq-per-channel', { quantize: { form: 'qdq', perChannel: true } }],
  ['int8-integer', { quantize: { form: 'integer', perChannel: false } }],
  ['pruned-0.5', { prune: { sparsity: 0.5, structured: false } }],
];
const ROOT = path.join(import.meta.dirname, '..', 'firmware-bundles');

describe('every optimizer output form deploys to a real agent and passes its smoke test', { timeout: 240_000 }, () => {
  let cp: TestPlane;
  let port = 0;
  let deviceId = '';

  let lab: PlaneWithAgent;
  before(async () => {
    lab = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-forms-', agentArgs: ['--probation-ms', '100', '--stats', 'off'] });
    ({ cp, port, deviceId } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  for (const demo of ['tabular', 'image'] as const) {
    test(`${demo} demo model: qdq per tensor, qdq per channel, integer, pruned`, async () => {
      const model = demo === 'tabular' ? demoTabular({ trainRows: 600, testRows: 50 }) : await demoImages({ trainImages: 300, epochs: 2, testImages: 20 });
      const def = await loadBundleDefinition(path.join(ROOT, `${demo}-demo`, 'bundle.json'));
      const name = `${demo}-forms`;
      assert.equal((await cp.api('POST', `/api/v1/models/${name}/versions`, { body: model.bytes as BodyInit })).status, 201);
      const sample = Array.from(model.test.inputs.subarray(0, model.test.sampleShape.reduce((a, b) => a * b, 1)));
      const request = { inputs: { [demo === 'tabular' ? 'features' : 'image']: { dims: [1, ...model.test.sampleShape], data: sample } } };
      const measured: Record<string, number> = {};
      for (const [i, [form, opts]] of FORMS.entries()) {
        const variant = await optimizeModel(model.bytes, opts);
        const up = await cp.api('POST', `/api/v1/models/${name}/versions`, { body: variant.bytes as BodyInit });
        assert.equal(up.status, 201, JSON.stringify(up.body));
        const version = i + 2;
        const built = await cp.api('POST', '/api/v1/bundles', { json: { model: `${name}@${version}`, definition: def.definition, labels: def.labels } });
        assert.equal(built.status, 201, JSON.stringify(built.body));
        measured[form] = built.body.definition.smoke.measured.maxAbsDiff;
        assert.ok(built.body.definition.smoke.tolerance >= 4 * measured[form] && built.body.definition.smoke.tolerance >= 1e-4);
        assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: built.body.id, device: deviceId } })).status, 201);
        let last: unknown;
        await waitFor(
          async () => {
            const d = (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
            last = { state: d.updateState, active: d.reported?.active?.model, error: d.reported?.lastError };
            return d.updateState === 'active' && d.reported?.active?.model?.version === version;
          },
          `${name}@${version} (${form}) active on the agent`,
          60_000,
        ).catch((e: Error) => assert.fail(`${e.message}: ${JSON.stringify(last)}`));
        // The device answers what onnxruntime with the device's options answers.
        const r = await api(port, 'POST', '/v1/predict', request);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const s = await ort.InferenceSession.create(variant.bytes, DEVICE_SESSION_OPTIONS);
        const direct = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', Float32Array.from(sample), [1, ...model.test.sampleShape]) });
        await s.release();
        const want = direct[s.outputNames[0]].data as Float32Array;
        (r.body.outputs[s.outputNames[0]].data as number[]).forEach((v, k) => assert.ok(Math.abs(v - want[k]) < 1e-6, `${form} output ${k}: ${v} vs ${want[k]}`));
      }
      console.log(`${demo}: |diff| device options vs plain session per form: ${JSON.stringify(measured)}`);
      assert.ok(measured['int8-qdq-per-channel'] > 0, 'folding QDQ changes the outputs: the options the outputs are recorded with matter');
    });
  }
});
