/**
 * ONNX files on disk: reading (with typed errors naming the file) and resolving external data.
 */
import { closeSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync, fstatSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { MimicError, errorMessage } from '../../errors.js';
import { ModelTooLargeError, ProtoDecodeError, decodeModel, encodeModel, type GraphProto, type ModelProto, type TensorProto } from './proto.js';

/** Decodes model bytes; malformed input is an E_ONNX error naming `file`. */
export function parseModel(bytes: Uint8Array, file?: string): ModelProto {
  try {
    return decodeModel(bytes);
  } catch (e) {
    if (e instanceof ProtoDecodeError || e instanceof RangeError) {
      throw new MimicError('E_ONNX', `${file ?? 'the model'} is not a valid ONNX model: ${e.message}`, {
        file,
        hint: 'the file may be truncated or not an ONNX file; export it again',
        cause: e,
      });
    }
    throw e;
  }
}

export function readModelFile(path: string): { model: ModelProto; bytes: Uint8Array } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new MimicError('E_IO', `cannot read ${path}: ${errorMessage(e)}`, { file: path, cause: e });
  }
  return { model: parseModel(bytes, path), bytes };
}

/** Encodes a model; over protobuf's 2 GiB it is an E_ONNX error that says what to do instead. */
export function serializeModel(model: ModelProto, what = 'the model'): Uint8Array {
  try {
    return encodeModel(model);
  } catch (e) {
    if (e instanceof ModelTooLargeError) {
      throw new MimicError('E_ONNX', `${what} cannot be written as one ONNX file: ${e.message}`, {
        hint: 'run the encoders and the gradient graph as separate sessions (the default) instead of a fused model',
        cause: e,
      });
    }
    throw e;
  }
}

/** Initializers (and attribute tensors, in subgraphs too) whose data lives in another file. */
export function externalTensors(graph: GraphProto): TensorProto[] {
  const out: TensorProto[] = [];
  const visit = (g: GraphProto): void => {
    for (const t of g.initializer) if (t.dataLocation === 1) out.push(t);
    for (const n of g.node) {
      for (const a of n.attribute) {
        if (a.t?.dataLocation === 1) out.push(a.t);
        for (const t of a.tensors ?? []) if (t.dataLocation === 1) out.push(t);
        if (a.g) visit(a.g);
        for (const sg of a.graphs ?? []) visit(sg);
      }
    }
  };
  visit(graph);
  return out;
}

/**
 * Reads every external tensor's bytes from the files beside the model (`baseDir`) into the model itself, so it
 * can be re-encoded as one file. Offsets and lengths are checked against the files; paths may not leave baseDir.
 */
export function inlineExternalData(model: ModelProto, baseDir: string, modelName = 'the model'): void {
  const fds = new Map<string, number>();
  try {
    for (const t of externalTensors(model.graph)) {
      const info = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
      const location = info.location;
      const fail = (why: string): never => {
        throw new MimicError('E_ONNX', `${modelName}: tensor "${t.name}" has external data that ${why}`, {
          file: location ? join(baseDir, location) : undefined,
          hint: 'keep the external data file(s) next to the .onnx file, as the exporter wrote them',
        });
      };
      if (!location) fail('names no file');
      const rel = normalize(location!);
      if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) fail(`points outside the model's folder (${location})`);
      const path = join(baseDir, rel);
      let fd = fds.get(path);
      if (fd === undefined) {
        try {
          fd = openSync(path, 'r');
        } catch (e) {
          fail(`cannot be opened (${errorMessage(e)})`);
        }
        fds.set(path, fd!);
      }
      const size = fstatSync(fd!).size;
      const offset = info.offset === undefined ? 0 : Number(info.offset);
      const length = info.length === undefined ? size - offset : Number(info.length);
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        fail(`lies outside ${location} (offset ${info.offset}, length ${info.length}, file size ${size})`);
      }
      const data = new Uint8Array(length);
      let at = 0;
      while (at < length) {
        const n = readSync(fd!, data, at, length - at, offset + at);
        if (n === 0) fail(`is cut short in ${location}`);
        at += n;
      }
      t.rawData = data;
      delete t.externalData;
      delete t.dataLocation;
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}
