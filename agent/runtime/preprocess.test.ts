import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { ImagePreprocess, TabularPreprocess } from '../../firmware-bundles/definition.ts';
import { rejectsWith, throwsWith } from '../../test/helpers/runtime-checks.ts';
import { RuntimeError } from './errors.ts';
import { preprocessImage, preprocessRequest, preprocessTabular, tensorsFromJson } from './preprocess.ts';
import type { TensorMeta } from './tensor.ts';

const tabular = TabularPreprocess.parse({
  type: 'tabular',
  input: 'features',
  features: [{ name: 'a' }, { name: 'b' }, { name: 'n', dtype: 'int64' }, { name: 'color', dtype: 'categorical', categories: ['red', 'green', 'blue'] }],
});

describe('tabular preprocessing', () => {
  test('an object row follows the spec feature order; extra fields are counted and ignored', () => {
    const r = preprocessTabular(tabular, { color: 'blue', n: 3, b: 2.5, a: -1, note: 'x', other: 1 });
    assert.deepEqual(r.dims, [1, 4]);
    assert.deepEqual([...r.data], [-1, 2.5, 3, 2]);
    assert.deepEqual(r.quality, [{ missing: 0, extra: 2, wrongType: 0, nan: 0 }]);
    assert.equal(r.batch, false);
    assert.equal(r.input, 'features');
  });

  test('an array row is in feature order; a batch mixes objects and arrays', () => {
    assert.deepEqual([...preprocessTabular(tabular, [1, 2, 3, 0]).data], [1, 2, 3, 0]);
    const r = preprocessTabular(tabular, [{ a: 1, b: 2, n: 3, color: 'green' }, [4, Number.NaN, 6, 2], [7, Infinity, 9, 'red']]);
    assert.equal(r.batch, true);
    assert.deepEqual(r.dims, [3, 4]);
    assert.deepEqual([...r.data], [1, 2, 3, 1, 4, NaN, 6, 2, 7, Infinity, 9, 0]);
    assert.deepEqual(r.quality.map((q) => q.nan), [0, 1, 1]);
  });

  test('missing and wrong-type values are INVALID_INPUT naming the row and the feature', () => {
    throwsWith(() => preprocessTabular(tabular, { a: 1, n: 3, color: 'red' }), 'INVALID_INPUT', /feature "b" is missing/);
    throwsWith(() => preprocessTabular(tabular, { a: 1, b: null, n: 3, color: 'red' }), 'INVALID_INPUT', /feature "b" is missing/);
    throwsWith(() => preprocessTabular(tabular, [{ a: 1, b: 2, n: 3, color: 'red' }, { a: '1', b: 2, n: 3, color: 'red' }]), 'INVALID_INPUT', /row 1: feature "a" must be a number, got string "1"/);
    throwsWith(() => preprocessTabular(tabular, { a: 1, b: 2, n: 3.5, color: 'red' }), 'INVALID_INPUT', /feature "n" must be an integer, got 3\.5/);
    throwsWith(() => preprocessTabular(tabular, { a: 1, b: 2, n: 3, color: 'purple' }), 'INVALID_INPUT', /feature "color": unknown category "purple"/);
    throwsWith(() => preprocessTabular(tabular, { a: true, b: 2, n: 3, color: 'red' }), 'INVALID_INPUT', /feature "a" must be a number, got boolean/);
    throwsWith(() => preprocessTabular(tabular, [1, 2, 3]), 'INVALID_INPUT', /3 values given, expected 4/);
    throwsWith(() => preprocessTabular(tabular, []), 'INVALID_INPUT', /empty/);
    throwsWith(() => preprocessTabular(tabular, 'a=1'), 'INVALID_INPUT', /must be an object/);
    throwsWith(() => preprocessTabular(tabular, [[1, 2, 3, 0], 5]), 'INVALID_INPUT', /row 1: a row must be an object/);
    const err = (() => {
      try {
        preprocessTabular(tabular, [[1, 2, 3, 0], { a: 1, n: 3, color: 'red' }]);
      } catch (e) {
        return e as RuntimeError;
      }
    })();
    assert.deepEqual(err?.details, { row: 1, feature: 'b' });
  });

  test("the 'nan' policy substitutes NaN for float features and counts it; int and categorical still refuse", () => {
    const r = preprocessTabular(tabular, { b: 'oops', n: 1, color: 0 }, { missing: 'nan', wrongType: 'nan' });
    assert.ok(Number.isNaN(r.data[0]) && Number.isNaN(r.data[1]));
    assert.deepEqual(r.quality, [{ missing: 1, extra: 0, wrongType: 1, nan: 2 }]);
    throwsWith(() => preprocessTabular(tabular, { a: 1, b: 2, color: 0 }, { missing: 'nan' }), 'INVALID_INPUT', /feature "n" is missing/);
  });

  test('a batch larger than maxRows is refused', () => {
    throwsWith(() => preprocessTabular(tabular, Array.from({ length: 3 }, () => [1, 2, 3, 0]), { maxRows: 2 }), 'INVALID_INPUT', /3 rows, at most 2/);
  });
});

describe('image preprocessing', () => {
  const spec = ImagePreprocess.parse({ type: 'image', input: 'image', width: 8, height: 6, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.5] });
  // A gradient so every pixel differs and a channel swap or a transposition would show.
  const rawSrc = Buffer.from(Array.from({ length: 20 * 10 * 3 }, (_, i) => (i * 37) % 256));
  const source = () => sharp(rawSrc, { raw: { width: 20, height: 10, channels: 3 } });

  async function reference(bytes: Buffer, s = spec): Promise<{ px: Buffer; c: number }> {
    const gray = s.channels === 'gray';
    const { data, info } = await sharp(bytes).resize(s.width, s.height, { fit: s.fit as Exclude<typeof s.fit, 'letterbox'> }).removeAlpha().toColourspace(gray ? 'b-w' : 'srgb').raw().toBuffer({ resolveWithObject: true });
    return { px: data, c: info.channels };
  }

  test('letterbox: aspect kept, centred, padded with the set grey; scale and padding recorded per image', async () => {
    const wide = await source().png().toBuffer(); // 20×10 into 8×6: scale 0.4 → 8×4, one row of padding above and below
    const tall = await sharp(rawSrc, { raw: { width: 10, height: 20, channels: 3 } }).png().toBuffer(); // scale 0.3 → 3×6, 2 columns left, 3 right
    const lb = ImagePreprocess.parse({ type: 'image', input: 'image', width: 8, height: 6, fit: 'letterbox', pad: 7 });
    const r = await preprocessImage(lb, [wide, tall]);
    assert.deepEqual(r.pixels[0].letterbox, { scale: 0.4, width: 8, height: 4, left: 0, top: 1 });
    assert.deepEqual(r.pixels[1].letterbox, { scale: 0.3, width: 3, height: 6, left: 2, top: 0 });
    assert.deepEqual(r.pixels[1].source, { width: 10, height: 20 });
    const inner = async (png: Buffer, w: number, h: number) => (await sharp(png).resize(w, h, { fit: 'fill' }).removeAlpha().raw().toBuffer());
    const expected = (content: Buffer, box: { left: number; top: number; width: number; height: number }) =>
      Uint8Array.from({ length: 8 * 6 * 3 }, (_, i) => {
        const [x, y, c] = [Math.floor(i / 3) % 8, Math.floor(i / 24), i % 3];
        const inside = x >= box.left && x < box.left + box.width && y >= box.top && y < box.top + box.height;
        return inside ? content[((y - box.top) * box.width + (x - box.left)) * 3 + c] : 7;
      });
    assert.deepEqual(r.pixels[0].data, expected(await inner(wide, 8, 4), { left: 0, top: 1, width: 8, height: 4 }));
    assert.deepEqual(r.pixels[1].data, expected(await inner(tall, 3, 6), { left: 2, top: 0, width: 3, height: 6 }));
    // Without a set value the padding is YOLO's 114.
    const dflt = await preprocessImage(ImagePreprocess.parse({ type: 'image', input: 'image', width: 8, height: 6, fit: 'letterbox' }), wide);
    assert.deepEqual(Array.from(dflt.pixels[0].data.subarray(0, 24)), new Array(24).fill(114));
  });

  test('PNG → resize → (p / scale − mean) / std in NCHW, plus the resized RGB pixels', async () => {
    const png = await source().png().toBuffer();
    const r = await preprocessImage(spec, png);
    const { px } = await reference(png);
    assert.deepEqual(r.dims, [1, 3, 6, 8]);
    assert.equal(r.batch, false);
    assert.deepEqual(r.pixels[0].data, new Uint8Array(px));
    assert.equal(r.pixels[0].channels, 3);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 48; i++) {
        const want = Math.fround((px[i * 3 + c] / 255 - spec.mean[c]) / spec.std[c]);
        assert.equal(r.data[c * 48 + i], want, `c${c} i${i}`);
      }
    }
  });

  test('NHWC layout, BGR order and a batch of JPEG + WebP + base64 PNG', async () => {
    const s = { ...spec, layout: 'NHWC' as const, channels: 'bgr' as const, mean: [0, 0, 0], std: [1, 1, 1], scale: 1 };
    const jpeg = await source().jpeg().toBuffer();
    const webp = await source().webp({ lossless: true }).toBuffer();
    const png = await source().png().toBuffer();
    const r = await preprocessImage(s, [jpeg, webp, `data:image/png;base64,${png.toString('base64')}`]);
    assert.deepEqual(r.dims, [3, 6, 8, 3]);
    assert.equal(r.batch, true);
    for (const [n, bytes] of [jpeg, webp, png].entries()) {
      const { px } = await reference(bytes, s);
      for (let i = 0; i < 48; i++) {
        for (let k = 0; k < 3; k++) assert.equal(r.data[n * 144 + i * 3 + k], px[i * 3 + (2 - k)], `image ${n} pixel ${i} channel ${k}`);
      }
      assert.deepEqual(r.pixels[n].data, new Uint8Array(px), 'pixels stay RGB');
    }
  });

  test('gray specs give one channel; RGBA and grey sources give the channels the spec asks for', async () => {
    const rgba = await sharp({ create: { width: 10, height: 10, channels: 4, background: { r: 200, g: 100, b: 50, alpha: 0.5 } } }).png().toBuffer();
    const gray = await preprocessImage({ ...spec, channels: 'gray', mean: [0], std: [1] }, rgba);
    assert.deepEqual(gray.dims, [1, 1, 6, 8]);
    assert.equal(gray.pixels[0].channels, 1);
    const rgb = await preprocessImage(spec, rgba);
    assert.equal(rgb.pixels[0].data.length, 6 * 8 * 3);
    const greySource = await sharp(Buffer.alloc(100, 90), { raw: { width: 10, height: 10, channels: 1 } }).png().toBuffer();
    const fromGrey = await preprocessImage(spec, greySource);
    assert.deepEqual(fromGrey.dims, [1, 3, 6, 8]);
    assert.ok(fromGrey.pixels[0].data.every((v) => v === 90));
  });

  test("'contain' letterboxes to the exact size and 'inside' does the same", async () => {
    const png = await source().png().toBuffer(); // 20×10 into 8×6: 8×4 plus black bars
    for (const fit of ['contain', 'inside'] as const) {
      const r = await preprocessImage({ ...spec, fit }, png);
      assert.equal(r.pixels[0].width, 8);
      assert.equal(r.pixels[0].height, 6);
      assert.deepEqual([...r.pixels[0].data.subarray(0, 3)], [0, 0, 0], `${fit}: top row is padding`);
    }
  });

  test('undecodable bytes are INVALID_IMAGE; non-bytes are INVALID_INPUT', async () => {
    await rejectsWith(preprocessImage(spec, Buffer.from('definitely not an image')), 'INVALID_IMAGE', /cannot decode the image/);
    const jpeg = await source().jpeg().toBuffer();
    await rejectsWith(preprocessImage(spec, [jpeg, jpeg.subarray(0, 100)]), 'INVALID_IMAGE', /image 1/);
    await rejectsWith(preprocessImage(spec, 42), 'INVALID_INPUT', /must be bytes/);
    await rejectsWith(preprocessImage(spec, []), 'INVALID_INPUT', /empty/);
    await rejectsWith(preprocessImage(spec, jpeg, { maxInputPixels: 100 }), 'INVALID_IMAGE');
  });
});

describe('JSON tensors', () => {
  const metas: TensorMeta[] = [
    { name: 'x', isTensor: true, type: 'float32', shape: ['batch', 3] },
    { name: 'ids', isTensor: true, type: 'int64', shape: [2] },
  ];

  test('checked against the model inputs and typed as the model declares', () => {
    const feeds = tensorsFromJson({ x: { dims: [2, 3], data: [1, 2, 3, 4, 5, 6] }, ids: { dims: [2], data: [7, -8] } }, metas);
    assert.deepEqual(feeds.x, { type: 'float32', dims: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
    assert.deepEqual(feeds.ids, { type: 'int64', dims: [2], data: BigInt64Array.of(7n, -8n) });
  });

  test('rank, fixed dims, element count, names, types and nesting are INVALID_INPUT', () => {
    const ok = { dims: [2], data: [1, 2] };
    throwsWith(() => tensorsFromJson({ x: { dims: [6], data: [1, 2, 3, 4, 5, 6] }, ids: ok }, metas), 'INVALID_INPUT', /input "x" has shape \[6\] \(rank 1\), the model expects \[batch, 3\] \(rank 2\)/);
    throwsWith(() => tensorsFromJson({ x: { dims: [3, 2], data: [1, 2, 3, 4, 5, 6] }, ids: ok }, metas), 'INVALID_INPUT', /dim 1 must be 3/);
    throwsWith(() => tensorsFromJson({ x: { dims: [2, 3], data: [1, 2, 3] }, ids: ok }, metas), 'INVALID_INPUT', /needs 6 values, got 3/);
    throwsWith(() => tensorsFromJson({ x: { dims: [1, 3], data: [1, 2, 3] } }, metas), 'INVALID_INPUT', /missing input "ids" \(int64 \[2\]\)/);
    throwsWith(() => tensorsFromJson({ x: { dims: [1, 3], data: [1, 2, 3] }, ids: ok, y: ok }, metas), 'INVALID_INPUT', /unknown input "y"/);
    throwsWith(() => tensorsFromJson({ x: { dims: [1, 3], data: [1, 2, 3] }, ids: { dims: [2], data: [1.5, 2] } }, metas), 'INVALID_INPUT', /value 0 \(1\.5\) is not a valid int64/);
    throwsWith(() => tensorsFromJson({ x: { dims: [1, 3], data: [1, 'a', 3] }, ids: ok }, metas), 'INVALID_INPUT', /value 1 is "a", expected a number/);
    throwsWith(() => tensorsFromJson({ x: { dims: [1, 3], data: [[1, 2], 3] }, ids: ok }, metas), 'INVALID_INPUT');
    throwsWith(() => tensorsFromJson({ x: { dims: [1, 3], data: [1, 2, 3], type: 'float64' }, ids: ok }, metas), 'INVALID_INPUT', /float64, the model expects float32/);
    throwsWith(() => tensorsFromJson({ x: { dims: [1, -3], data: [] }, ids: ok }, metas), 'INVALID_INPUT', /non-negative integers/);
    throwsWith(() => tensorsFromJson([1, 2], metas), 'INVALID_INPUT', /object of named tensors/);
  });
});

describe('preprocessRequest', () => {
  const inputs: TensorMeta[] = [{ name: 'features', isTensor: true, type: 'int64', shape: ['batch', 4] }];

  test('casts to the model input type and keeps the feature values and quality for statistics', async () => {
    const pre = await preprocessRequest(tabular, { features: [[1, 2, 3, 'blue']] }, inputs);
    assert.deepEqual(pre.feeds.features, { type: 'int64', dims: [1, 4], data: BigInt64Array.of(1n, 2n, 3n, 2n) });
    assert.deepEqual([...pre.features!], [1, 2, 3, 2]);
    assert.equal(pre.quality!.length, 1);
    await rejectsWith(preprocessRequest(tabular, { features: [[1.5, 2, 3, 'blue']] }, inputs), 'INVALID_INPUT', /not a valid int64/);
  });

  test('a request has exactly one matching kind', async () => {
    await rejectsWith(preprocessRequest(tabular, { image: Buffer.alloc(3) }, inputs), 'INVALID_INPUT', /takes "features".*not "image"/);
    await rejectsWith(preprocessRequest(tabular, { features: {}, inputs: {} }, inputs), 'INVALID_INPUT', /exactly one/);
    await rejectsWith(preprocessRequest(tabular, {}, inputs), 'INVALID_INPUT', /exactly one.*none/);
    await rejectsWith(preprocessRequest(tabular, null, inputs), 'INVALID_INPUT');
  });
});
