// float16 conversion against onnxruntime's own float32 → float16 Cast, including ties, subnormals,
// overflow and the values around 1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel, node, valueInfo } from '../server/onnx/build.ts';
import { fromFloat16Bits, toFloat16Bits } from './float16.ts';

test('toFloat16Bits rounds as onnxruntime\'s Cast does; fromFloat16Bits reads the values back', async () => {
  const values = [0, -0, 1, -1, 0.1, 1 / 3, 65504, 65520, 1e6, -1e6, 6e-8, 3e-8, 2.9e-8, 1e-5, 2 ** -14, 2 ** -24, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN];
  for (let i = 0; i < 2000; i++) values.push(Math.sin(i * 12.9898) * 10 ** ((i % 12) - 6));
  const cast = await ort.InferenceSession.create(
    encodeModel({ inputs: [valueInfo('x', 'float32', ['N'])], outputs: [valueInfo('y', 'float16', ['N'])], initializers: [], nodes: [node('Cast', ['x'], ['y'], { to: 10 })] }),
  );
  const want = (await cast.run({ x: new ort.Tensor('float32', Float32Array.from(values), [values.length]) })).y.data as Uint16Array;
  await cast.release();
  const got = toFloat16Bits(values);
  values.forEach((v, i) => {
    if (Number.isNaN(v)) assert.ok(Number.isNaN(fromFloat16Bits([got[i]])[0]));
    else assert.equal(got[i], want[i], `${v}: 0x${got[i].toString(16)} vs onnxruntime 0x${want[i].toString(16)}`);
  });
  assert.deepEqual(fromFloat16Bits(toFloat16Bits([1.5, -2, 65504, 2 ** -24])), [1.5, -2, 65504, 2 ** -24]);
  assert.deepEqual(fromFloat16Bits([0x7c00, 0xfc00]), [Infinity, -Infinity]);
});
