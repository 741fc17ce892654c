/** The dependency-free ONNX toolkit: protobuf messages, a graph builder, file I/O and model surgery. */
export { GraphBuilder, irVersionForOpset, tensor, attribute, valueInfo, type AttrValue, type Dim, type NodeOptions, type BuilderOptions } from './builder.js';
export { Ops, MIN_OPSET, type Precision } from './ops.js';
export {
  DataType,
  AttributeType,
  decodeModel,
  encodeModel,
  ModelTooLargeError,
  ProtoDecodeError,
  PROTOBUF_LIMIT,
  type ModelProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  type AttributeProto,
  type TypeProto,
  type OpsetId,
} from './proto.js';
export { parseModel, readModelFile, serializeModel, externalTensors, inlineExternalData } from './io.js';
export { renameValues, prefixNodeNames, mergeOpsets, defaultOpset, graphInputs, assertRenamable } from './merge.js';
export { withUint8Input, type Uint8InputOptions } from './uint8-input.js';
export { toFloat16, toHalfBits, fromHalfBits, FLOAT16_MAX, type Float16Result } from './float16.js';
export { withResizingUint8Input, resizeCropGeometry, RESIZED_MASK_INPUT, type ResizingInputOptions } from './resize-input.js';
