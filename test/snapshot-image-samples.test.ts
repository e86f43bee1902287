// A retraining snapshot of an image dataset takes the image samples devices uploaded (HTTP Basic as the
// device) and labelled through the ground-truth API: each becomes a file of the new version with its
// label; unlabelled ones are skipped and counted in the job log; the same data again answers the same
// version.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { loadDataset } from '../server/datasets/dataset-service.ts';
import { writeTar } from '../server/datasets/tar.ts';
import { snapshotData } from '../server/jobs/snapshot.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const png = (r: number) => sharp({ create: { width: 8, height: 8, channels: 3, background: { r, g: 10, b: 200 } } }).png().toBuffer();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('retraining snapshot with image samples', () => {
  let cp: TestPlane;
  let dir: string;

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-snapimg-'));
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    assert.equal((await runCli(['keys', 'init', '--root-key', path.join(dir, 'root.key')], env)).code, 0);
    assert.equal((await cp.api('POST', '/api/v1/models/cam/versions', { body: gemmModel() as BodyInit })).status, 201);
    const built = await runCli(['bundles', 'build', 'cam@1', '--def', BUNDLE_DEF], env);
    assert.equal(built.code, 0, built.stderr);
  });
  after(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('labelled image samples become files of the snapshot version with their labels', async () => {
    // The base dataset: two images with labels.
    const base = [await png(10), await png(20)];
    const tar = writeTar([
      { path: 'a.png', data: base[0] },
      { path: 'b.png', data: base[1] },
      { path: 'labels.csv', data: new TextEncoder().encode('file,label\na.png,circle\nb.png,square\n') },
    ]);
    const pushed = await cp.api('POST', '/api/v1/datasets/shapes/versions?format=tar', { body: tar as BodyInit, headers: { 'content-type': 'application/x-tar' } });
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));

    // A device given cam@1 with capture on uploads three image samples; two get labels.
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'cams', selector: 'site=cam' } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'cam' } } })).body.token;
    const device = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as { deviceId: string; mqtt: { password: string } };
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'cam@1', cohort: 'cams' } })).status, 201);
    assert.equal((await cp.api('PUT', '/api/v1/agent-settings/cohort/cams', { json: { sampleCapture: { enabled: true, maxPerMinute: 600, batchSize: 10 } } })).status, 200);
    const images = [await png(100), await png(150), await png(200)];
    const samples = images.map((img) => ({ sampleId: randomUUID(), predictionId: randomUUID(), at: new Date().toISOString(), inputs: { image: img.toString('base64') }, outputs: { predictedClass: 'circle', confidence: 0.6 } }));
    const upload = await fetch(`${cp.url}/api/v1/devices/${device.deviceId}/samples`, {
      method: 'POST',
      headers: { authorization: 'Basic ' + Buffer.from(`${device.deviceId}:${device.mqtt.password}`).toString('base64'), 'content-type': 'application/json' },
      body: JSON.stringify({ v: 1, deviceId: device.deviceId, bundleId: 'x', model: { name: 'cam', version: 1 }, samples }),
    });
    assert.equal(upload.status, 200, await upload.clone().text());
    assert.deepEqual(await upload.json(), { accepted: 3, duplicates: 0 });
    const labels = await cp.api('POST', '/api/v1/labels', { json: [{ predictionId: samples[0].predictionId, label: 'square' }, { predictionId: samples[2].predictionId, label: 'triangle, big' }] });
    assert.equal(labels.status, 200, JSON.stringify(labels.body));

    const log: string[] = [];
    const run = () => snapshotData(cp.plane.db, cp.plane.store, { data: { dataset: 'shapes', includeSamples: true, includeLabels: true }, modelName: 'cam', jobId: 'job_test', actor: 'test', log: (l) => log.push(l) });
    const snap = await run();
    assert.equal(snap.version.ref, 'shapes@2');
    assert.equal(snap.samples, 2);
    assert.equal(snap.version.kind, 'images');
    assert.match(log.join('\n'), /shapes@1 \+ 2 labelled image sample\(s\); 1 unlabelled sample\(s\) skipped/);

    const loaded = await loadDataset(cp.plane.db, cp.plane.store, 'shapes@2');
    const items = loaded.images!;
    assert.equal(items.length, 4);
    assert.deepEqual(items.slice(0, 2).map((i) => [i.file, i.label, i.sha256]), [['a.png', 'circle', sha(base[0])], ['b.png', 'square', sha(base[1])]]);
    const added = items.slice(2);
    assert.deepEqual(added.map((i) => i.file), [0, 2].map((k) => `samples/${device.deviceId}-${samples[k].sampleId}.png`));
    assert.deepEqual(added.map((i) => i.label), ['square', 'triangle, big']);
    assert.deepEqual(added.map((i) => i.sha256), [sha(images[0]), sha(images[2])]);
    // Each image is its own content-addressed artifact, byte for byte what the device sent.
    assert.deepEqual(await readFile(cp.plane.store.pathOf(added[1].sha256)), images[2]);
    assert.deepEqual(snap.version.source, { kind: 'snapshot', jobId: 'job_test', base: 'shapes@1', samples: 2, labelled: 2, unlabelledSkipped: 1 });

    // The next job starts from shapes@2, which has these samples already: no new version.
    const again = await run();
    assert.equal(again.version.ref, 'shapes@2');
    assert.match(log.at(-1)!, /2 already in it, 1 unlabelled sample\(s\) skipped/);
  });
});
