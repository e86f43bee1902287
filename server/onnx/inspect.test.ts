// inspectOnnx walks the protobuf wire format (wire.ts) instead of decoding the model: it must still
// count weights wherever a model keeps them (raw_data and float_data initializers, Constant nodes,
// If subgraphs), report the graph's typed inputs/outputs and opset, and refuse what is not ONNX.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeModel, floatTensor, node, valueInfo } from './build.ts';
import { InvalidOnnxError, inspectOnnx } from './inspect.ts';
import { onnx } from './onnx-proto.ts';

function model(): Uint8Array {
  const base = onnx.ModelProto.decode(
    encodeModel({
      inputs: [valueInfo('x', 'float32', ['batch', 4]), valueInfo('W', 'float32', [4, 2])], // W listed as an input too (old exporters)
      outputs: [valueInfo('y', 'float32', ['batch', 2])],
      initializers: [floatTensor('W', [4, 2], new Float32Array(8).fill(0.5))],
      nodes: [node('MatMul', ['x', 'W'], ['m']), node('Constant', [], ['c'], { value: floatTensor('c', [2], [1, 2]) }), node('Add', ['m', 'c'], ['y'])],
      opset: 17,
      producer: 'test',
    }),
  );
  // A float_data initializer (decoded element by element by protobufjs) and an If with a subgraph.
  base.graph!.initializer!.push(onnx.TensorProto.create({ name: 'F', dims: [3, 5], dataType: 1, floatData: new Array(15).fill(0.25) }));
  const sub = onnx.GraphProto.create({ name: 'then', initializer: [floatTensor('S', [6], new Float32Array(6))], node: [node('Identity', ['S'], ['s'])], output: [valueInfo('s', 'float32', [6])] });
  base.graph!.node!.push(onnx.NodeProto.create({ opType: 'If', input: ['cond'], output: ['z'], attribute: [{ name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: sub }] }));
  return onnx.ModelProto.encode(base).finish();
}

describe('inspectOnnx', () => {
  it('reads structure and counts weights in initializers (raw and float_data), Constant nodes and subgraphs', () => {
    const info = inspectOnnx(model());
    assert.equal(info.irVersion, 8);
    assert.equal(info.opset, 17);
    assert.equal(info.producer, 'test 0.1.0');
    assert.deepEqual(info.inputs, [{ name: 'x', dtype: 'float32', shape: ['batch', 4] }]);
    assert.deepEqual(info.outputs, [{ name: 'y', dtype: 'float32', shape: ['batch', 2] }]);
    assert.equal(info.paramCount, 8 + 15 + 2 + 6);
    assert.equal(info.initializerBytes, (8 + 15 + 2 + 6) * 4);
    assert.equal(info.nodeCount, 5); // MatMul, Constant, Add, If + Identity inside it
    assert.deepEqual(info.opTypes, ['Add', 'Constant', 'Identity', 'If', 'MatMul']);
  });

  it('refuses bytes that are not an ONNX model, truncated or not', () => {
    const bytes = model();
    for (const bad of [new TextEncoder().encode('definitely not a model'), bytes.subarray(0, bytes.length - 7), new Uint8Array(0)]) {
      assert.throws(() => inspectOnnx(bad), InvalidOnnxError);
    }
  });
});
