import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { IMAGE_SIZE, makeShapes, readShapesFolder, sliceShapes, toNchw, writeShapesFolder } from './synthetic-shapes.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const meanByte = (px: Uint8Array) => px.reduce((a, b) => a + b, 0) / px.length;

describe('synthetic shapes', () => {
  it('is deterministic for a seed and differs between seeds', async () => {
    const a = await makeShapes({ n: 40, seed: 5 });
    const b = await makeShapes({ n: 40, seed: 5 });
    const c = await makeShapes({ n: 40, seed: 6 });
    assert.deepEqual(a.pixels, b.pixels);
    assert.deepEqual(a.labels, b.labels);
    assert.notDeepEqual(a.pixels, c.pixels);
    assert.equal(a.pixels.length, 40 * IMAGE_SIZE * IMAGE_SIZE * 3);
  });

  it('draws all three classes and visibly different pictures', async () => {
    const d = await makeShapes({ n: 90, seed: 1 });
    const counts = [0, 0, 0];
    for (const l of d.labels) counts[l]++;
    assert.ok(counts.every((c) => c >= 20), `class counts ${counts}`);
    // Every image has a shape: its pixels are not all one colour (beyond noise).
    for (let i = 0; i < d.n; i++) {
      const px = d.pixels.subarray(i * 3072, (i + 1) * 3072);
      assert.ok(Math.max(...px) - Math.min(...px) > 60, `image ${i} looks empty`);
    }
  });

  it('brightnessShift brightens the same pictures', async () => {
    const base = await makeShapes({ n: 30, seed: 2 });
    const bright = await makeShapes({ n: 30, seed: 2, brightnessShift: 40 });
    const delta = meanByte(bright.pixels) - meanByte(base.pixels);
    assert.ok(delta > 25 && delta <= 40, `mean moved by ${delta}`); // < 40 only where 255 clips
    assert.deepEqual(bright.labels, base.labels);
  });

  it('toNchw applies (x/255 − 0.5)/0.5 and moves channels first', async () => {
    const d = await makeShapes({ n: 2, seed: 3 });
    const x = toNchw(d.pixels, 2);
    const HW = IMAGE_SIZE * IMAGE_SIZE;
    for (const [i, p, c] of [[0, 0, 0], [1, 517, 2], [1, 1023, 1]]) {
      assert.equal(x[i * 3 * HW + c * HW + p], Math.fround((d.pixels[i * 3 * HW + p * 3 + c] / 255 - 0.5) / 0.5));
    }
    assert.deepEqual(toNchw(d.pixels, 1, 1), x.subarray(3 * HW));
    assert.deepEqual(sliceShapes(d, 1, 2).labels, d.labels.subarray(1));
  });

  it('writes PNGs + labels.csv that read back to the same pixels', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-shapes-'));
    dirs.push(dir);
    const d = await makeShapes({ n: 12, seed: 4 });
    await writeShapesFolder(dir, d);
    const files = (await readdir(dir)).sort();
    assert.equal(files.length, 13);
    const csv = (await readFile(join(dir, 'labels.csv'), 'utf8')).trim().split('\n');
    assert.equal(csv[0], 'file,label');
    assert.match(csv[1], /^00000\.png,(circle|square|triangle)$/);
    const back = await readShapesFolder(dir);
    assert.deepEqual(back.pixels, d.pixels);
    assert.deepEqual(back.labels, d.labels);
  });
});
