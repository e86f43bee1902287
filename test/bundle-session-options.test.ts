// Per-bundle onnxruntime session options through a real agent: a definition's `session` is validated
// at build (unknown keys and bad values are a 422 naming them, and a failed CLI build), ships in the
// bundle.json the signed manifest names by hash, and the agent creates the bundle's session with it —
// onnxruntime's own trace of the options it got (the bundle asks for `logSeverityLevel: 1`, which makes
// onnxruntime print "Session Options { … }" on the agent's stderr) shows every option arrived, and the
// agent's /v1/status reports them.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { api, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { twoHeadModel } from './helpers/odd-models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { loopSteps, wave } from './helpers/tensor-loop.ts';

describe('bundle session options on a real agent', { timeout: 180_000 }, () => {
  let p: PlaneWithAgent;
  let steps: ReturnType<typeof loopSteps>;
  before(async () => {
    p = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-session-opts-' });
    steps = loopSteps(p);
    await steps.push('two-head', twoHeadModel());
  });
  after(async () => {
    await p?.stop();
  });

  const io = { preprocess: { type: 'tensor', dims: { batch: 1 } }, postprocess: { task: 'outputs' } };

  test('bad session options are refused at build: unknown keys and bad values named, nothing built', async () => {
    const build = (session: object) => p.cp.api('POST', '/api/v1/bundles', { json: { model: 'two-head@1', definition: { name: 'two-head', ...io, session } } });
    const typo = await build({ intraOpThreads: 2, enableCpuMemArena: false, useGpu: true });
    assert.equal(typo.status, 422, JSON.stringify(typo.body));
    assert.equal(typo.body.error.details.reason, 'INVALID_DEFINITION');
    assert.match(typo.body.error.message, /session/);
    assert.match(typo.body.error.message, /"intraOpThreads"/);
    assert.match(typo.body.error.message, /"useGpu"/);
    const level = await build({ graphOptimizationLevel: 'max' });
    assert.equal(level.status, 422);
    assert.match(level.body.error.message, /session\.graphOptimizationLevel/);
    const threads = await build({ intraOpNumThreads: -1 });
    assert.equal(threads.status, 422);
    assert.match(threads.body.error.message, /session\.intraOpNumThreads/);
    // The CLI reads the definition itself: one line naming the key, exit non-zero.
    const def = await steps.writeDef('bad-session', { ...io, session: { interOpThreads: 3 } });
    const cli = await runCli(['bundles', 'build', 'two-head@1', '--def', def], p.env);
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /"interOpThreads"/);
    assert.equal((await p.cp.api('GET', '/api/v1/bundles')).body.bundles.length, 0, 'no bundle was built');
  });

  test('good options ship signed in bundle.json and the agent creates the session with them', async () => {
    const session = { graphOptimizationLevel: 'basic', intraOpNumThreads: 2, interOpNumThreads: 3, executionMode: 'parallel', enableCpuMemArena: false, enableMemPattern: false, logSeverityLevel: 1 };
    const def = await steps.writeDef('good-session', { ...io, session });
    const built = await steps.deploy('two-head@1', def);
    assert.deepEqual(built.definition.session, session);

    // Signed: the active bundle's bundle.json carries them, and the signed manifest names its hash.
    const current = path.join(p.dir, 'agent', 'current');
    const bundleJson = await readFile(path.join(current, 'bundle.json'));
    assert.deepEqual(JSON.parse(bundleJson.toString()).session, session);
    const manifest = JSON.parse(await readFile(path.join(current, 'manifest.json'), 'utf8'));
    const named = manifest.signed.files.find((f: { path: string }) => f.path === 'bundle.json');
    assert.equal(named.sha256, createHash('sha256').update(bundleJson).digest('hex'));
    assert.ok(manifest.signatures.length >= 1);

    // Applied: onnxruntime's trace of the options the agent's session was created with (the staged
    // session the smoke test ran on is the one that serves), and the agent's status.
    const trace = await waitFor(async () => /Session Options \{[^\n]*\}/.exec(p.agent.output)?.[0], 'onnxruntime traced the session options on the agent', 30_000);
    for (const seen of [
      'execution_mode:1', // parallel
      'enable_mem_pattern:0',
      'enable_cpu_mem_arena:0',
      'session_log_severity_level:1',
      'graph_optimization_level:1', // basic
      'intra_op_param:OrtThreadPoolParams { thread_pool_size: 2 ',
      'inter_op_param:OrtThreadPoolParams { thread_pool_size: 3 ',
      'session.disable_quant_qdq: 1', // the device default stays under the bundle's options
    ]) {
      assert.ok(trace.includes(seen), `${seen} in ${trace}`);
    }
    const status = await api(p.port, 'GET', '/v1/status');
    assert.deepEqual(status.body.sessionOptions, session);

    // And it serves what onnxruntime computes directly.
    const x = wave(16, 3);
    const r = await api(p.port, 'POST', '/v1/predict', { inputs: { x: { dims: [1, 16], data: x } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const direct = await steps.run(twoHeadModel(), { x: new ort.Tensor('float32', Float32Array.from(x), [1, 16]) });
    (r.body.outputs.box.data as number[]).forEach((v, i) => assert.ok(Math.abs(v - (direct.box.data as Float32Array)[i]) < 1e-5, `box ${v} vs ${(direct.box.data as Float32Array)[i]}`));
  });
});
