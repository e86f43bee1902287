import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { heavyFeeds, makeFixtures, tabularFeeds, tabularReference, tabularRows, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { rejectsWith } from '../../test/helpers/runtime-checks.ts';
import { RuntimeError } from './errors.ts';
import { ModelHost, type HostEvent, type ModelHandle } from './model-host.ts';

const SESSION_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1 };


let fx: Fixtures;
before(async () => {
  fx = await makeFixtures();
});
after(async () => {
  await fx.cleanup();
});

describe('ModelHost', () => {
  let host: ModelHost;
  const events: HostEvent[] = [];
  before(async () => {
    host = new ModelHost({ onEvent: (e) => events.push(e), maxInFlightPerWorker: 4 });
    await host.start();
  });
  after(async () => {
    await host.stop();
  });

  test('answers equal a direct InferenceSession.run on the same model and inputs', async () => {
    const h = await host.load(await fx.tabular(1));
    host.activate(h);
    assert.deepEqual([...h.inputNames], ['features']);
    assert.deepEqual(h.inputs[0], { name: 'features', isTensor: true, type: 'float32', shape: ['batch', 8] });
    const direct = await ort.InferenceSession.create(await fx.tabular(1), SESSION_OPTIONS);
    const imageHandle = await host.load(fx.image);
    const directImage = await ort.InferenceSession.create(fx.image, SESSION_OPTIONS);
    try {
      for (const n of [1, 3, 17]) {
        const x = tabularRows(n, n);
        const want = (await direct.run({ features: new ort.Tensor('float32', x.slice(), [n, 8]) })).logits;
        const got = (await host.infer(tabularFeeds(x))).logits;
        assert.deepEqual(got.dims, [n, 3]);
        assert.deepEqual(got.data, want.data);
        // and both agree with the plain-JS reference of the model (so the fixture is what we think)
        const ref = tabularReference(1, tabularRows(n, n));
        (got.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-4));
      }
      const img = Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.cos(i * 0.01));
      const want = (await directImage.run({ image: new ort.Tensor('float32', img.slice(), [2, 3, 32, 32]) })).logits;
      const got = (await host.infer({ image: { type: 'float32', dims: [2, 3, 32, 32], data: img } }, { handle: imageHandle })).logits;
      assert.deepEqual(got.data, want.data);
      assert.equal(img.length, 0, 'the input buffer was transferred to the worker, not copied');
    } finally {
      await direct.release();
      await directImage.release();
      await host.release(imageHandle);
    }
  });

  test('an input under 4 KB is copied into the message: the caller keeps its array', async () => {
    const x = tabularRows(1, 4);
    const out = await host.infer(tabularFeeds(x));
    assert.deepEqual(out.logits.dims, [1, 3]);
    assert.equal(x.length, 8, 'not detached');
    assert.deepEqual(x, tabularRows(1, 4));
  });

  test('a view into a larger buffer is copied, not transferred (the rest of the buffer stays usable)', async () => {
    const big = new Float32Array(64).fill(1);
    const view = big.subarray(8, 16);
    const out = await host.infer(tabularFeeds(view));
    assert.deepEqual(out.logits.dims, [1, 3]);
    assert.equal(big.length, 64);
    assert.equal(view.length, 8);
  });

  test('invalid feeds are typed INVALID_INPUT errors and the next good request still works', async () => {
    await rejectsWith(host.infer({ features: { type: 'float32', dims: [1, 7], data: new Float32Array(7) } }), 'INVALID_INPUT', /dim 1 must be 8/);
    await rejectsWith(host.infer({ features: { type: 'float32', dims: [8], data: new Float32Array(8) } }), 'INVALID_INPUT', /rank 1/);
    await rejectsWith(host.infer({ features: { type: 'float32', dims: [2, 8], data: new Float32Array(8) } }), 'INVALID_INPUT', /needs 16 values, got 8/);
    await rejectsWith(host.infer({ features: { type: 'int32', dims: [1, 8], data: new Int32Array(8) } }), 'INVALID_INPUT', /int32, the model expects float32/);
    await rejectsWith(host.infer({ features: { type: 'float32', dims: [1, 8], data: new Float64Array(8) as never } }), 'INVALID_INPUT', /not a Float32Array/);
    await rejectsWith(host.infer({ other: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } }), 'INVALID_INPUT', /unknown input "other"/);
    await rejectsWith(host.infer({}), 'INVALID_INPUT', /missing input "features"/);
    const x = tabularRows(2, 9);
    const out = await host.infer(tabularFeeds(x));
    const ref = tabularReference(1, tabularRows(2, 9));
    (out.logits.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-4));
  });

  test('a broken or missing model is MODEL_LOAD_FAILED and the active model keeps serving', async () => {
    const active = host.active;
    await rejectsWith(host.load(fx.broken), 'MODEL_LOAD_FAILED', /broken\.onnx/);
    await rejectsWith(host.load(`${fx.dir}/does-not-exist.onnx`), 'MODEL_LOAD_FAILED');
    assert.equal(host.active, active);
    const out = await host.infer(tabularFeeds(tabularRows(1, 3)));
    assert.deepEqual(out.logits.dims, [1, 3]);
  });

  test('activate swaps atomically under pipelined load: every answer comes from the model active when it was sent', async () => {
    const versions = [2, 3, 4, 5];
    const handles = new Map<number, number>(); // handle id → version
    const first = await host.load(await fx.tabular(versions[0]));
    handles.set(first.id, versions[0]);
    let previous = host.activate(first)!;
    // Every later version is loaded before the load starts, so each swap happens at once at its point of the
    // run: loaded during it, the last one could take longer (on a loaded CI machine) than the last quarter
    // of the requests, and then served none.
    const staged: ModelHandle[] = [];
    for (let i = 1; i < versions.length; i++) {
      const h = await host.load(await fx.tabular(versions[i]));
      handles.set(h.id, versions[i]);
      staged[i] = h;
    }
    const total = 1000;
    let sent = 0;
    let failures = 0;
    let checked = 0;
    const releases: Promise<void>[] = [];
    const seen = new Set<number>();
    const client = async () => {
      while (sent < total) {
        const seed = sent++;
        const version = handles.get(host.active!.id)!;
        const x = tabularRows(1, seed);
        try {
          const out = await host.infer(tabularFeeds(x));
          const ref = tabularReference(version, tabularRows(1, seed));
          const got = out.logits.data as Float32Array;
          for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i] - ref[i]) < 1e-4, `request ${seed}: output ${got} is not model v${version}'s ${ref}`);
          seen.add(version);
          checked++;
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          failures++;
        }
      }
    };
    const swapper = async () => {
      for (let i = 1; i < versions.length; i++) {
        while (sent < (total * i) / versions.length) await new Promise((r) => setImmediate(r));
        const next = staged[i];
        const old = host.activate(next)!;
        releases.push(host.release(old)); // frees the old session once its in-flight requests are done
      }
    };
    await Promise.all([...Array.from({ length: 16 }, client), swapper()]);
    await Promise.all(releases);
    assert.equal(failures, 0);
    assert.equal(checked, total);
    assert.deepEqual([...seen].sort(), versions, 'every model served some requests');
    await host.release(previous).catch(() => {}); // v1 from the first test
    assert.equal(host.stats().handles, 1, 'only the active model is left loaded');
  });

  test('release waits for the requests in flight on the handle, then frees it', async () => {
    const a = await host.load(fx.heavy);
    const b = await host.load(await fx.tabular(1));
    const previous = host.activate(a)!;
    await host.release(previous);
    const order: string[] = [];
    const runs = Array.from({ length: 12 }, (_, i) => host.infer(heavyFeeds(8)).then(() => order.push(`run${i}`)));
    host.activate(b);
    const released = host.release(a).then(() => order.push('released'));
    await Promise.all([...runs, released]);
    assert.equal(order.at(-1), 'released', `release finished before a request on it: ${order}`);
    await rejectsWith(host.infer(heavyFeeds(1), { handle: a }), 'UNKNOWN_HANDLE');
    await rejectsWith(host.release(b), 'HANDLE_ACTIVE');
    assert.throws(() => host.activate(a), (e: RuntimeError) => e.code === 'UNKNOWN_HANDLE');
  });

  test('a crashed worker is restarted with its models; only the requests that were on it fail', async () => {
    const staged = await host.load(await fx.tabular(7));
    const heavy = await host.load(fx.heavy);
    const crashesBefore = host.stats().workers[0].crashes;
    // maxInFlightPerWorker is 4: at most 4 requests are on the worker, the rest wait in the host.
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const p = host.infer(heavyFeeds(16), { handle: heavy });
        if (i === 19) host.simulateCrash();
        return p.then(
          () => 'ok',
          (e: RuntimeError) => e,
        );
      }),
    );
    const failed = results.filter((r): r is RuntimeError => r !== 'ok');
    assert.ok(failed.length >= 1 && failed.length <= 4, `${failed.length} failed`);
    for (const e of failed) {
      assert.equal(e.code, 'WORKER_CRASHED');
      assert.match(e.message, /exited unexpectedly.*restarted/);
    }
    assert.equal(host.stats().workers[0].crashes, crashesBefore + 1);
    // All models are back: the active one (default) and the staged ones.
    const active = await host.infer(tabularFeeds(tabularRows(1, 1)));
    assert.deepEqual(active.logits.dims, [1, 3]);
    const out = await host.infer(tabularFeeds(tabularRows(1, 2)), { handle: staged });
    const ref = tabularReference(7, tabularRows(1, 2));
    (out.logits.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-4));
    assert.ok(events.some((e) => e.type === 'worker-crashed' && e.failedRequests === failed.length));
    assert.ok(events.some((e) => e.type === 'worker-restarted' && e.reloaded >= 3 && e.failedReloads.length === 0));
    await host.release(staged);
    await host.release(heavy);
  });

  test('RSS stays bounded across 50 load / activate / release cycles', async () => {
    const before = host.activate(await host.load(fx.heavy));
    if (before) await host.release(before);
    let previous = host.active!;
    const mb = () => process.memoryUsage.rss() / 2 ** 20;
    const samples: number[] = [];
    let start = 0;
    for (let i = 0; i < 50; i++) {
      const h = await host.load(fx.heavy);
      await host.infer(heavyFeeds(4), { handle: h });
      host.activate(h);
      await host.release(previous);
      previous = h;
      if (i === 4) start = mb(); // after warm-up (arenas, allocator pools)
      if (i % 10 === 9) samples.push(Math.round(mb()));
    }
    const growth = mb() - start;
    console.log(`RSS over 50 cycles of a 4 MB model: ${samples.join(' → ')} MB (growth after warm-up ${growth.toFixed(1)} MB)`);
    assert.equal(host.stats().handles, 1);
    // Leaking a session per cycle would cost ≥ 4 MB of weights each, ~180 MB here.
    assert.ok(growth < 60, `RSS grew ${growth.toFixed(1)} MB`);
  });
});

describe('ModelHost event loop', () => {
  test('the main thread stays responsive while the worker runs a heavy model', async (t) => {
    const host = new ModelHost();
    await host.start();
    t.after(() => host.stop());
    host.activate(await host.load(fx.heavy));
    await host.infer(heavyFeeds(1));

    // Timer lateness every 5 ms, and event-loop utilization (share of wall time the main thread
    // was busy rather than waiting for events), over a burst.
    const measure = async (burst: () => Promise<unknown>) => {
      const late: number[] = [];
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        late.push(now - last - 5);
        last = now;
      }, 5);
      const elu0 = performance.eventLoopUtilization();
      const t0 = performance.now();
      await burst();
      const ms = performance.now() - t0;
      const elu = performance.eventLoopUtilization(elu0).utilization;
      clearInterval(timer);
      late.sort((a, b) => a - b);
      return { ms, elu, p95: late[Math.floor(0.95 * (late.length - 1))] ?? Infinity, worst: late.at(-1) ?? Infinity, samples: late.length };
    };

    const viaHost = await measure(() => Promise.all(Array.from({ length: 8 }, () => host.infer(heavyFeeds(128)))));
    // Control: the same model on the main thread blocks timers for a whole run, so the measurement
    // can see blocking (runs of 256 rows, ~2× a burst request, keep it well above the threshold).
    const session = await ort.InferenceSession.create(fx.heavy, SESSION_OPTIONS);
    const onMain = await measure(async () => {
      for (let i = 0; i < 3; i++) await session.run({ x: new ort.Tensor('float32', new Float32Array(256 * 1024).fill(0.01), [256, 1024]) });
    });
    await session.release();
    const show = (m: typeof viaHost) => `p95 ${m.p95.toFixed(1)} ms, worst ${m.worst.toFixed(1)} ms late over ${m.samples} ticks, loop busy ${(m.elu * 100).toFixed(0)} %`;
    console.log(`timer lateness during a ${viaHost.ms.toFixed(0)} ms burst: worker → ${show(viaHost)}; same model on the main thread → ${show(onMain)}`);
    assert.ok(viaHost.ms > 200, `the burst must be long enough to measure (${viaHost.ms.toFixed(0)} ms)`);
    assert.ok(onMain.p95 > 50 && onMain.elu > 0.8, 'control: a main-thread run blocks the timers');
    // p95 rather than the single worst tick: on a shared 2-core machine the OS alone can delay one
    // tick (worst 84 ms seen once at load average 6, while the main-thread control was at 210 ms).
    // The worst tick is printed above; blocking code fails both checks (see the control).
    assert.ok(viaHost.p95 < 50, `timers were ${viaHost.p95.toFixed(1)} ms late (p95) during the worker burst`);
    assert.ok(viaHost.elu < 0.5, `the main thread was busy ${(viaHost.elu * 100).toFixed(0)} % of the burst`);
  });
});

describe('ModelHost lifecycle', () => {
  test('calls outside start/stop are NOT_RUNNING; stop() fails what cannot finish; a pool of 2 serves', async () => {
    const host = new ModelHost({ poolSize: 2, stopTimeoutMs: 1 });
    await rejectsWith(host.infer(tabularFeeds(tabularRows(1, 1))), 'NOT_RUNNING');
    await host.start();
    await rejectsWith(host.infer(tabularFeeds(tabularRows(1, 1))), 'NO_ACTIVE_MODEL');
    const h = await host.load(fx.heavy);
    host.activate(h);
    await Promise.all(Array.from({ length: 4 }, () => host.infer(heavyFeeds(2))));
    const ids = new Set(host.stats().workers.map((w) => w.threadId));
    assert.equal(ids.size, 2);
    const pending = Array.from({ length: 40 }, () => host.infer(heavyFeeds(8)).then(() => 'ok', (e: RuntimeError) => e.code));
    await host.stop();
    const outcomes = await Promise.all(pending);
    assert.ok(outcomes.every((o) => o === 'ok' || o === 'NOT_RUNNING'), String(outcomes));
    assert.ok(outcomes.includes('NOT_RUNNING'), 'a 1 ms stop timeout cannot drain 40 heavy requests');
    await rejectsWith(host.infer(heavyFeeds(1)), 'NOT_RUNNING');
    assert.deepEqual(host.stats().workers.map((w) => w.state), ['stopped', 'stopped']);
  });
});
