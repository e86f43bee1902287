// onnx-proto ships CommonJS; this re-export gives ESM code one typed entry point.
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type onnx = typeof onnxProto.onnx;
export type ModelProto = InstanceType<typeof onnxProto.onnx.ModelProto>;
export type GraphProto = import('onnx-proto').onnx.IGraphProto;
export type TensorProto = import('onnx-proto').onnx.ITensorProto;
export type NodeProto = import('onnx-proto').onnx.INodeProto;
export type ValueInfoProto = import('onnx-proto').onnx.IValueInfoProto;
