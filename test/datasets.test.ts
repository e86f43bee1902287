// Datasets end to end: CLI pushes (CSV, JSON lines, an image folder), content-addressed dedupe,
// versioning, bad inputs refused with nothing half-written, download, reference profiles from a dataset.
import assert from 'node:assert/strict';
import { imageFeatureNames } from '../protocol/sketch/image-features.ts';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { writeTar } from '../server/datasets/tar.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

describe('datasets', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const csv = tabularToCsv(makeTabularRows({ n: 200, seed: 7 }));

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-datasets-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const push = (name: string, body: string | Uint8Array, query = '', type = 'text/csv') =>
    cp.api('POST', `/api/v1/datasets/${name}/versions${query}`, { body: body as BodyInit, headers: { 'content-type': type } });

  test('push a CSV: columns typed with roles; identical content answers the same version; new content is version 2', async () => {
    const file = path.join(dir, 'sensors.csv');
    await writeFile(file, csv);
    const first = await runCli(['--json', 'datasets', 'push', file, '--name', 'sensors', '--group', 'region'], env);
    assert.equal(first.code, 0, first.stderr);
    const v1 = JSON.parse(first.stdout);
    assert.equal(v1.created, true);
    assert.equal(v1.version.ref, 'sensors@1');
    assert.equal(v1.version.rows, 200);
    const roles = Object.fromEntries(v1.version.columns.map((c: { name: string; role: string; type: string }) => [c.name, `${c.role}:${c.type}`]));
    assert.deepEqual(roles, {
      f0: 'feature:numeric', f1: 'feature:numeric', f2: 'feature:numeric', f3: 'feature:numeric', f4: 'feature:numeric', f5: 'feature:numeric', f6: 'feature:numeric', f7: 'feature:numeric',
      region: 'group:categorical',
      label: 'label:categorical',
    });
    assert.deepEqual(v1.version.columns.find((c: { name: string }) => c.name === 'label').values, ['high', 'low', 'medium']);

    const again = await runCli(['datasets', 'push', file, '--name', 'sensors', '--group', 'region'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /unchanged: identical content is sensors@1/);
    assert.equal((await cp.api('GET', '/api/v1/datasets/sensors/versions')).body.versions.length, 1);

    await writeFile(file, csv + '1,2,3,4,5,6,7,8,north,low\n');
    const second = await runCli(['--json', 'datasets', 'push', file, '--name', 'sensors', '--group', 'region'], env);
    assert.equal(JSON.parse(second.stdout).version.ref, 'sensors@2');

    const ls = await runCli(['datasets', 'ls'], env);
    assert.match(ls.stdout, /sensors\s+2\s+2/);
    const show = await runCli(['datasets', 'show', 'sensors@1'], env);
    assert.match(show.stdout, /region\s+categorical\s+group\s+north,south/);
    const download = await fetch(`${cp.url}/api/v1/datasets/sensors/versions/1/content`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    assert.equal(await download.text(), csv);
  });

  test('JSON lines: a column with text in it is categorical, missing keys are nulls', async () => {
    const lines = ['{"x": 1, "kind": "a", "label": 0}', '{"x": 2.5, "kind": 3, "label": 1}', '{"x": 3, "label": 1}'].join('\n');
    const r = await push('events', lines, '?format=jsonl');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const cols = Object.fromEntries(r.body.version.columns.map((c: { name: string; type: string }) => [c.name, c.type]));
    assert.deepEqual(cols, { x: 'numeric', kind: 'categorical', label: 'numeric' });
  });

  test('bad inputs are 400 with a clear message, and nothing is left half-written', async () => {
    const cases: Array<[string, string | Uint8Array, string, RegExp]> = [
      ['empty', '', '', /empty/],
      ['ragged', 'a,b,label\n1,2,x\n3,4\n', '', /line 3: expected 3 fields, got 2/],
      ['no-label', 'a,b\n1,2\n', '?label=target', /label column "target" is not in the dataset \(columns: a, b\)/],
      ['no-group', 'a,label\n1,x\n', '?group=site', /group column "site" is not in the dataset/],
      ['header-only', 'a,label\n', '', /no rows/],
      ['bad-jsonl', '{"a": 1}\nnot json\n', '?format=jsonl', /line 2 is not JSON/],
      ['not-tar', 'hello', '?format=tar', /not a readable tar archive/],
      ['tar-without-labels', writeTar([{ path: 'a.png', data: new Uint8Array([1, 2, 3]) }]), '?format=tar', /no labels\.csv/],
    ];
    for (const [name, body, query, message] of cases) {
      const r = await push(`bad-${name}`, body, query);
      assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error.message, message, name);
    }
    const cli = await runCli(['datasets', 'push', path.join(dir, 'nope.csv'), '--name', 'x'], env);
    assert.equal(cli.code, 2);
    const refused = await runCli(['datasets', 'push', await writeTemp('ragged.csv', 'a,b\n1\n'), '--name', 'x'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^flotilla: CSV line 2: expected 2 fields, got 1 \[invalid_request\]\n$/);
    // No dataset rows for any refused push, no temp file left behind.
    const names = (await cp.api('GET', '/api/v1/datasets')).body.datasets.map((d: { name: string }) => d.name);
    assert.ok(!names.some((n: string) => n.startsWith('bad-') || n === 'x'), names.join(','));
    assert.deepEqual(await cp.plane.store.pendingTempFiles(), []);
  });

  const writeTemp = async (name: string, text: string) => {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return file;
  };

  test('an image folder with labels.csv is pushed as a tar; each image is stored by sha256 and a missing file is refused', async () => {
    const images = path.join(dir, 'images');
    await mkdir(path.join(images, 'sub'), { recursive: true });
    const lines = ['file,label,camera'];
    for (let i = 0; i < 4; i++) {
      const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 40 * i, g: 10, b: 200 } } }).png().toBuffer();
      const file = i === 3 ? 'sub/03.png' : `0${i}.png`;
      await writeFile(path.join(images, file), png);
      lines.push(`${file},${i % 2 ? 'square' : 'circle'},cam${i % 2}`);
    }
    await writeFile(path.join(images, 'labels.csv'), lines.join('\n') + '\n');
    const r = await runCli(['--json', 'datasets', 'push', images, '--name', 'shapes', '--group', 'camera'], env);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout).version;
    assert.equal(v.kind, 'images');
    assert.equal(v.rows, 4);
    assert.deepEqual(v.columns.map((c: { name: string; role: string }) => `${c.name}:${c.role}`), ['file:id', 'label:label', 'camera:group']);
    const manifest = await (await fetch(`${cp.url}/api/v1/datasets/shapes/versions/1/content`, { headers: { authorization: `Bearer ${cp.adminToken}` } })).json();
    const png = await fetch(`${cp.url}/artifacts/sha256/${manifest.items[3].sha256}`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    assert.deepEqual(Buffer.from(await png.arrayBuffer()), await readFile(path.join(images, 'sub/03.png')));
    assert.equal(JSON.parse((await runCli(['--json', 'datasets', 'push', images, '--name', 'shapes', '--group', 'camera'], env)).stdout).created, false);

    await writeFile(path.join(images, 'labels.csv'), lines.join('\n') + '\nmissing.png,circle,cam0\n');
    const bad = await runCli(['datasets', 'push', images, '--name', 'shapes'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /labels\.csv line 6: "missing\.png" is not in the archive/);
  });

  test('a reference profile comes from a stored dataset: its feature columns only', async () => {
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit })).status, 201);
    const r = await runCli(['--json', 'models', 'reference', 'tab@1', '--dataset', 'sensors@1'], env);
    assert.equal(r.code, 0, r.stderr);
    const profile = JSON.parse(r.stdout);
    assert.equal(profile.rows, 200);
    assert.equal(profile.source, 'dataset sensors@1');
    assert.deepEqual(profile.features.map((f: { name: string }) => f.name), ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7']);
    // Image features are computed on the pixels the bundle's preprocessing produces: without a bundle
    // definition (or a given preprocess) there is nothing to compute them with (test/image-reference.test.ts has the rest).
    const images = await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { json: { dataset: 'shapes@1' } });
    assert.equal(images.status, 400);
    assert.match(images.body.error.message, /tab@1 has no bundle definition .* image features are computed on the preprocessed pixels/);
    const given = await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { json: { dataset: 'shapes@1', preprocess: { width: 8, height: 8, channels: 'gray' } } });
    assert.equal(given.status, 201, JSON.stringify(given.body));
    assert.equal(given.body.rows, 4);
    assert.deepEqual(given.body.features.map((f: { name: string }) => f.name).sort(), imageFeatureNames(1).sort());
  });
});
