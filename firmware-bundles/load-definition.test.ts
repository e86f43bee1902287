import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BundleBuildError } from './builder.ts';
import { loadBundleDefinition, parseLabels } from './load-definition.ts';

const dir = await mkdtemp(join(tmpdir(), 'flotilla-def-'));
after(() => rm(dir, { recursive: true, force: true }));
const def = (labels: unknown) => ({ name: 'x', preprocess: { type: 'tabular', input: 'features', features: [{ name: 'f0' }] }, postprocess: { labels } });
const isCode = (code: string) => (e: unknown) => e instanceof BundleBuildError && e.code === code;

test('reads the labels file next to the definition', async () => {
  await writeFile(join(dir, 'labels.txt'), 'a\r\n b \n\nc\n');
  await writeFile(join(dir, 'bundle.json'), JSON.stringify(def('labels.txt')));
  const { definition, labels } = await loadBundleDefinition(join(dir, 'bundle.json'));
  assert.deepEqual(labels, ['a', 'b', 'c']);
  assert.equal(definition.postprocess.labels, 'labels.txt');
  assert.deepEqual(parseLabels('x\n\ny'), ['x', 'y']);
});

test('refuses labels outside the definition folder, missing files and invalid definitions', async () => {
  for (const ref of ['../labels.txt', '/etc/passwd']) {
    await writeFile(join(dir, 'bundle.json'), JSON.stringify(def(ref)));
    await assert.rejects(loadBundleDefinition(join(dir, 'bundle.json')), isCode('INVALID_DEFINITION'), ref);
  }
  await writeFile(join(dir, 'bundle.json'), JSON.stringify(def('nope.txt')));
  await assert.rejects(loadBundleDefinition(join(dir, 'bundle.json')), isCode('LABELS_MISSING'));
  await writeFile(join(dir, 'bundle.json'), JSON.stringify({ name: 'Bad Name' }));
  await assert.rejects(loadBundleDefinition(join(dir, 'bundle.json')), isCode('INVALID_DEFINITION'));
  await writeFile(join(dir, 'bundle.json'), '{ not json');
  await assert.rejects(loadBundleDefinition(join(dir, 'bundle.json')), isCode('INVALID_DEFINITION'));
});
