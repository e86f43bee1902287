// Optimization and evaluation through the control plane: `flotilla optimize` registers a child
// version with its report and lineage; the numbers match an independent onnxruntime run; the variant
// loads in onnxruntime-node and onnxruntime-web; a variant past the budgets is rejected and cannot be
// bundled until an admin overrides (audited); a corrupted or weightless graph is refused with a reason;
// evaluation of a new version runs against the champion with governance.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';
import { DEMO_MLP_HIDDEN, exportMlpOnnx, trainMlp } from '../server/training/mlp.ts';
import { FEATURES, featureMatrix, labelIndices, makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

function argmax(data: ArrayLike<number>, width: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < data.length / width; i++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (data[i * width + c] > data[i * width + best]) best = c;
    out.push(best);
  }
  return out;
}

describe('optimize and evaluate', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const heldOut = makeTabularRows({ n: 600, seed: 12 });

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-optimize-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    // The demo model's shape (weights dominate the file), so the int8 size criterion holds on this path too.
    const model = exportMlpOnnx(trainMlp(makeTabularRows({ n: 1500, seed: 11 }), { seed: 1, epochs: 20, hidden: DEMO_MLP_HIDDEN }));
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: model as BodyInit })).status, 201);
    const file = path.join(dir, 'val.csv');
    await writeFile(file, tabularToCsv(heldOut));
    const pushed = await runCli(['datasets', 'push', file, '--name', 'val', '--group', 'region'], env);
    assert.equal(pushed.code, 0, pushed.stderr);
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const download = async (sha256: string) => new Uint8Array(await (await fetch(`${cp.url}/artifacts/sha256/${sha256}`, { headers: { authorization: `Bearer ${cp.adminToken}` } })).arrayBuffer());

  test('flotilla optimize registers an int8 child with recipe, lineage and a report that an independent run reproduces', async () => {
    const human = await runCli(['optimize', 'tab@1', '--quantize', 'int8', '--eval', 'val@1'], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^registered tab@2 \(int8\) — ready/);
    assert.match(human.stdout, /MODEL\s+ACCURACY\s+F1\s+AGREEMENT\s+SIZE\s+GZIP\s+P50\s+P95\s+MEMORY\s+SMALLER/);
    assert.match(human.stdout, /^tab@1\s+\d+\.\d\d %/m);
    assert.match(human.stdout, /^tab@2 int8\s+\d+\.\d\d %/m);
    assert.match(human.stdout, /quality budget: met/);
    assert.match(human.stdout, /slices by region \(north, south\)/);

    const v = (await cp.api('GET', '/api/v1/models/tab/versions/2')).body;
    assert.equal(v.parent, 'tab@1');
    assert.equal(v.variant, 'int8');
    assert.equal(v.status, 'ready');
    assert.deepEqual(v.recipe.quantize, { form: 'qdq', perChannel: false, quantizedParamShare: v.recipe.quantize.quantizedParamShare });
    assert.ok(v.recipe.quantize.quantizedParamShare > 0.5);
    assert.equal(v.recipe.dataset, 'val@1');
    const r = v.evaluation;
    assert.equal(r.baseline.ref, 'tab@1');
    assert.equal(r.samples, 600);
    for (const k of ['accuracy', 'f1Macro', 'sizeBytes', 'gzipBytes']) assert.equal(typeof r.metrics[k], 'number', k);
    assert.ok(r.metrics.latency.p50Ms > 0 && r.metrics.latency.p95Ms >= r.metrics.latency.p50Ms);
    assert.equal(r.metrics.sizeBytes, v.size);
    assert.ok(r.comparison.sizeRatio >= 3.5, `int8 is ${r.comparison.sizeRatio}× smaller`);
    assert.deepEqual((await cp.api('GET', '/api/v1/models/tab/versions/1')).body.children, ['tab@2']);

    // Independent recomputation: onnxruntime-node on the stored files, all rows in one batch.
    const x = featureMatrix(heldOut);
    const y = labelIndices(heldOut);
    const run = async (sha: string) => {
      const s = await ortNode.InferenceSession.create(await download(sha), v.recipe.sessionOptions);
      const out = await s.run({ features: new ortNode.Tensor('float32', x, [heldOut.length, FEATURES.length]) });
      await s.release();
      return argmax(out.logits.data as Float32Array, 3);
    };
    const parentPred = await run((await cp.api('GET', '/api/v1/models/tab/versions/1')).body.sha256);
    const childPred = await run(v.sha256);
    const acc = childPred.filter((p, i) => p === y[i]).length / y.length;
    const agree = childPred.filter((p, i) => p === parentPred[i]).length / y.length;
    assert.equal(r.metrics.accuracy, acc);
    assert.equal(r.comparison.agreement, agree);
    assert.equal(r.baselineMetrics.accuracy, parentPred.filter((p, i) => p === y[i]).length / y.length);

    // The variant loads in onnxruntime-web too, with the same predictions.
    const web = await ortWeb.InferenceSession.create(await download(v.sha256));
    const webOut = await web.run({ features: new ortWeb.Tensor('float32', x, [heldOut.length, FEATURES.length]) });
    assert.deepEqual(argmax(webOut.logits.data as Float32Array, 3), childPred);
  });

  test('a variant past the budgets is rejected, cannot be bundled, and an admin override (audited) lets it through', async () => {
    const budgets = await runCli(['models', 'budgets', 'tab', '--min-agreement', '1', '--max-accuracy-drop', '0'], env);
    assert.equal(budgets.code, 0, budgets.stderr);
    assert.match(budgets.stdout, /minAgreement\s+1\s+yes/);
    const res = await runCli(['--json', 'optimize', 'tab@1', '--prune', '0.9', '--eval', 'val@1'], env);
    // The variant is registered and reported, but the command fails with the reason.
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /tab@3 \(pruned\) was registered but rejected: accuracy drop .*agreement with parent/);
    const out = JSON.parse(res.stdout);
    assert.equal(out.version.ref, 'tab@3');
    assert.equal(out.version.variant, 'pruned');
    assert.equal(out.version.status, 'rejected');
    assert.match(out.version.statusReason, /agreement with parent \d+\.\d\d % < 100\.00 %/);
    assert.ok(out.version.recipe.prune.achievedSparsity > 0.85);

    const refused = await runCli(['bundles', 'build', 'tab@3', '--def', BUNDLE_DEF], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /tab@3 is rejected \(accuracy drop \d+\.\d\d points > 0\.00 .*agreement with parent/);

    const engineer = (await cp.api('POST', '/api/v1/tokens', { json: { name: 'ml', role: 'ml-engineer' } })).body.token;
    const forbidden = await runCli(['models', 'override', 'tab@3', '--reason', 'field test'], { ...env, FLOTILLA_TOKEN: engineer });
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /\[forbidden\]/);
    const ok = await runCli(['models', 'override', 'tab@3', '--reason', 'field test on two gateways'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const audit = (await cp.api('GET', '/api/v1/audit?action=model.version.override')).body;
    const entry = (audit.entries ?? audit.audit ?? audit).find((e: { target: string }) => e.target === 'tab@3');
    assert.equal(entry.details.reason, 'field test on two gateways');
    assert.match(entry.details.statusReason, /agreement/);
    const show = await runCli(['models', 'show', 'tab@3'], env);
    assert.match(show.stdout, /override\s+by bootstrap-admin .*field test on two gateways/);
    const built = await runCli(['bundles', 'build', 'tab@3', '--def', BUNDLE_DEF], env);
    assert.equal(built.code, 0, built.stderr);
    await runCli(['models', 'budgets', 'tab', '--reset'], env);
  });

  test('a corrupted graph and a graph without weights are refused with the reason', async () => {
    // Parses as ONNX, but the Gemm reads a weight nobody defines: onnxruntime cannot load it.
    const broken = encodeModel({
      inputs: [valueInfo('features', 'float32', ['batch', 8])],
      outputs: [valueInfo('logits', 'float32', ['batch', 3])],
      initializers: [floatTensor('b', [3], [0, 0, 0])],
      nodes: [node('Gemm', ['features', 'W_missing', 'b'], ['logits'])],
      metadata: { 'flotilla.labels': 'low,medium,high' },
    });
    const weightless = encodeModel({
      inputs: [valueInfo('features', 'float32', ['batch', 8])],
      outputs: [valueInfo('logits', 'float32', ['batch', 8])],
      initializers: [],
      nodes: [node('Relu', ['features'], ['logits'])],
      metadata: { 'flotilla.labels': 'low,medium,high,a,b,c,d,e' },
    });
    assert.equal((await cp.api('POST', '/api/v1/models/broken/versions', { body: broken as BodyInit })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/models/plain/versions', { body: weightless as BodyInit })).status, 201);
    const a = await cp.api('POST', '/api/v1/models/broken/versions/1/optimize', { json: { dataset: 'val@1', quantize: { form: 'qdq' } } });
    assert.equal(a.status, 422, JSON.stringify(a.body));
    assert.equal(a.body.error.details.reason, 'corrupt_model');
    const b = await runCli(['optimize', 'plain@1', '--quantize', 'int8', '--eval', 'val@1'], env);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /\[invalid_model\]/);
    const plain = await cp.api('POST', '/api/v1/models/plain/versions/1/optimize', { json: { dataset: 'val@1', quantize: { form: 'integer' } } });
    assert.equal(plain.body.error.details.reason, 'not_quantizable');
    // Nothing registered for either.
    assert.equal((await cp.api('GET', '/api/v1/models/plain/versions')).body.versions.length, 1);
  });

  test('a new version is evaluated against the champion, with slices, fairness and importance in `models show`', async () => {
    const file = path.join(dir, 'retrained.onnx');
    await writeFile(file, exportMlpOnnx(trainMlp(makeTabularRows({ n: 1500, seed: 13 }), { seed: 2, epochs: 25 })));
    await runCli(['models', 'alias', 'tab', 'champion', '1'], env);
    const ev = await runCli(['--json', 'models', 'push', file, '--name', 'tab', '--eval', 'val@1'], env);
    assert.equal(ev.code, 0, ev.stderr);
    const report = JSON.parse(ev.stdout).report;
    assert.equal(JSON.parse(ev.stdout).version.ref, 'tab@4');
    assert.deepEqual(report.baseline, { ref: 'tab@1', role: 'champion' });
    assert.equal(report.governance.slices[0].attribute, 'region');
    assert.deepEqual(report.governance.slices[0].compared, ['north', 'south']);
    assert.equal(report.governance.importance.features.length, 8);
    // f0 drives the label most (see synthetic-tabular.ts); a distractor (f5–f7) cannot top it.
    assert.ok(['f0', 'f2', 'f3'].includes(report.governance.importance.features[0].feature));
    const show = await runCli(['models', 'show', 'tab@4'], env);
    assert.match(show.stdout, /evaluation on val@1, 600 samples against champion tab@1/);
    assert.match(show.stdout, /fairness budget: (met|BROKEN)/);
    assert.match(show.stdout, /permutation importance \(accuracy drop\): f\d/);

    // A fairness budget nobody can meet rejects the version, with the slice named in the reason.
    await runCli(['models', 'budgets', 'tab', '--max-parity-gap', '0'], env);
    const strict = JSON.parse((await runCli(['--json', 'models', 'evaluate', 'tab@4', '--dataset', 'val@1'], env)).stdout);
    assert.equal(strict.version.status, 'rejected');
    assert.match(strict.version.statusReason, /region: demographic parity difference/);
  });
  test('without --eval the variant is compared with its parent on inputs generated from the declared shape, and the report says so', async () => {
    await runCli(['models', 'budgets', 'tab', '--reset'], env);
    const res = await runCli(['--json', 'optimize', 'tab@1', '--quantize', 'int8', '--per-channel'], env);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.equal(out.report.inputs, 'generated');
    assert.match(out.report.dataset, /generated from the declared input shape/);
    assert.equal(out.report.metrics.accuracy, undefined, 'no labels: no task metric');
    assert.ok(out.report.comparison.agreement > 0.9, JSON.stringify(out.report.comparison));
    assert.equal(out.version.status, 'ready');
  });
});
