// A crashed inference worker gets its models back even when their files moved or went since they were
// loaded: the agent renames a bundle's staging dir into bundles/ at activation (bundle-store.ts
// commitStaging), and a re-signed manifest (adopt) hard-links the files into a new dir and deletes the
// old one. Real onnxruntime, a real worker thread and its crash hook.
import assert from 'node:assert/strict';
import { copyFile, link, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeFixtures, tabularFeeds, tabularReference, tabularRows, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { close } from '../../test/helpers/runtime-checks.ts';
import { externalWeightsModel } from '../../test/helpers/zoo-models.ts';
import { ModelHost, type HostEvent } from './model-host.ts';


/** Crashes worker 0 and resolves with the host's 'worker-restarted' event (at most 20 s). */
async function crashAndRestart(host: ModelHost, events: HostEvent[]): Promise<Extract<HostEvent, { type: 'worker-restarted' }>> {
  const seen = events.length;
  host.simulateCrash();
  const end = Date.now() + 20_000;
  for (;;) {
    const e = events.slice(seen).find((x): x is Extract<HostEvent, { type: 'worker-restarted' }> => x.type === 'worker-restarted');
    if (e) return e;
    if (Date.now() > end) assert.fail(`no restart after the crash: ${JSON.stringify(events.slice(seen))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let fx: Fixtures;
let dir: string;
before(async () => {
  fx = await makeFixtures();
  dir = await mkdtemp(join(tmpdir(), 'flotilla-reload-'));
});
after(async () => {
  await fx.cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('worker mode: after activation renamed the staging dir and adopt deleted the old dir, a crashed worker reloads the model and answers', async () => {
  const events: HostEvent[] = [];
  const host = new ModelHost({ thread: 'worker', onEvent: (e) => events.push(e) });
  await host.start();
  try {
    const staging = join(dir, 'staging', '7-a');
    await mkdir(staging, { recursive: true });
    await copyFile(await fx.tabular(7), join(staging, 'model.onnx'));
    const h = await host.load(join(staging, 'model.onnx'));
    host.activate(h);
    const check = async (what: string) => close((await host.infer(tabularFeeds(tabularRows(2, 3)))).logits.data as Float32Array, tabularReference(7, tabularRows(2, 3)), what);
    await check('before');

    // Activation: staging/<name> → bundles/<name> (commitStaging).
    await mkdir(join(dir, 'bundles'), { recursive: true });
    await rename(staging, join(dir, 'bundles', '7-a'));
    let restarted = await crashAndRestart(host, events);
    assert.deepEqual(restarted.failedReloads, [], 'the model reloads although its path is gone');
    await check('after a crash, the dir renamed');

    // adopt(): the same files hard-linked into a new dir, the old dir removed.
    await mkdir(join(dir, 'bundles', '8-b'));
    for (const f of await readdir(join(dir, 'bundles', '7-a'))) await link(join(dir, 'bundles', '7-a', f), join(dir, 'bundles', '8-b', f));
    await rm(join(dir, 'bundles', '7-a'), { recursive: true });
    restarted = await crashAndRestart(host, events);
    assert.deepEqual(restarted.failedReloads, []);
    await check('after a crash, the old dir deleted');

    // Even with every link gone (the inode lives while the host holds it open).
    await rm(join(dir, 'bundles', '8-b'), { recursive: true });
    restarted = await crashAndRestart(host, events);
    assert.deepEqual(restarted.failedReloads, []);
    await check('after a crash, the file unlinked');
  } finally {
    await host.stop();
  }
});

test('worker mode: a model with external weights reloads after its dir was renamed', async () => {
  const events: HostEvent[] = [];
  const host = new ModelHost({ thread: 'worker', onEvent: (e) => events.push(e) });
  await host.start();
  try {
    const m = externalWeightsModel();
    const staging = join(dir, 'staging', '9-ext');
    await mkdir(staging, { recursive: true });
    await writeFile(join(staging, 'model.onnx'), m.model);
    await writeFile(join(staging, m.dataFile), m.data);
    const reference = await ort.InferenceSession.create(m.inlined);
    const x = tabularRows(2, 5);
    const want = (await reference.run({ x: new ort.Tensor('float32', x.slice(), [2, 8]) })).y.data as Float32Array;
    await reference.release();

    const h = await host.load(join(staging, 'model.onnx'));
    host.activate(h);
    await rename(staging, join(dir, 'bundles-ext'));
    const restarted = await crashAndRestart(host, events);
    assert.deepEqual(restarted.failedReloads, [], 'external weights found through the renamed dir');
    close((await host.infer({ x: { type: 'float32', dims: [2, 8], data: x.slice() } })).y.data as Float32Array, want, 'after the crash');
  } finally {
    await host.stop();
  }
});

test('release closes what the host kept open for a model', async () => {
  const host = new ModelHost({ thread: 'worker' });
  await host.start();
  try {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const path = join(dir, 'release-model.onnx');
    await copyFile(await fx.tabular(2), path);
    const before = await fds();
    const h = await host.load(path);
    assert.ok((await fds()) > before, 'the model file is held open while loaded');
    await host.release(h);
    assert.equal(await fds(), before, 'release closed it');
  } finally {
    await host.stop();
  }
});
