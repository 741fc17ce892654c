/**
 * The common part of giving an image encoder another pixel input (uint8-input.ts, resize-input.ts): find its one
 * float32 [B,3,H,W] input, hand its name to new nodes the caller prepends, and take the encoder as bytes or as a
 * decoded model.
 */
import { parseModel, serializeModel } from './io.js';
import { assertRenamable, graphInputs, renameValues } from './merge.js';
import { DataType, type Dimension, type ModelProto, type TypeProto, type ValueInfoProto } from './proto.js';

export interface PixelInput {
  /** The graph input; the caller sets its new type. */
  input: ValueInfoProto;
  tensorType: NonNullable<TypeProto['tensorType']>;
  /** Its [B,3,H,W] shape as declared. */
  shape: Dimension[];
}

/**
 * The encoder's one float32 [B,3,H,W] input, or `fail` saying why there is none (`shapeText` names the expected
 * shape in that message). Changes nothing.
 */
export function pixelInputOf(model: ModelProto, fail: (why: string) => never, shapeText = '[B,3,H,W]'): PixelInput {
  const inputs = graphInputs(model.graph);
  if (inputs.length !== 1) fail(`the encoder has ${inputs.length} inputs, expected one pixel input`);
  const input = inputs[0]!;
  const tensorType = input.type?.tensorType;
  if (!tensorType || tensorType.elemType !== DataType.FLOAT) fail(`input ${input.name} is not float32`);
  const shape = tensorType!.shape;
  if (!shape || shape.length !== 4 || (shape[1]!.dimValue !== undefined && Number(shape[1]!.dimValue) !== 3)) {
    fail(`input ${input.name} is not ${shapeText}`);
  }
  return { input, tensorType: tensorType!, shape: shape! };
}

export interface DetachedInput {
  /** The value the encoder reads now, in place of the input: the caller's last prepended node must produce it. */
  normalized: string;
  /** A value name that is not in the graph yet (and is then reserved). */
  fresh(base: string): string;
  /** Whether a value name is in the graph (or was given out by `fresh`). */
  has(name: string): boolean;
}

/** Rename the input inside the graph (the graph input keeps its name) so that new nodes can sit in between. */
export function detachInput(model: ModelProto, input: ValueInfoProto): DetachedInput {
  const name = input.name;
  const used = new Set<string>();
  renameValues(model.graph, (n) => (used.add(n), n));
  const fresh = (base: string): string => {
    let n = `${name}/${base}`;
    for (let k = 1; used.has(n); k++) n = `${name}/${base}_${k}`;
    used.add(n);
    return n;
  };
  const normalized = fresh('normalized');
  renameValues(model.graph, (n) => (n === name ? normalized : n));
  input.name = name;
  return { normalized, fresh, has: (n) => used.has(n) };
}

/** Apply `rewrite` to an encoder given as bytes (decoded, checked, encoded again) or decoded (changed in place). */
export function rewriteEncoder(model: Uint8Array | ModelProto, rewrite: (m: ModelProto) => ModelProto): Uint8Array | ModelProto {
  if (!(model instanceof Uint8Array)) return rewrite(model);
  const decoded = parseModel(model, 'the image encoder');
  assertRenamable(decoded, 'the image encoder');
  return serializeModel(rewrite(decoded), 'the image encoder');
}
