import { decodeResized, type DecodeOptions, type SourceInfo } from './decode.js';
import { normalizeHwcToChw, normalizeTableFor } from './normalize.js';
import type { ImageSpec } from './spec.js';

/**
 * Decodes, resizes and normalises one image into row `offsetFloats / (3·S·S)` of a float32 [B,3,S,S] batch
 * that the caller owns, so a batch is filled without intermediate tensors. Returns what the source was.
 */
export async function preprocessInto(
  bytes: Uint8Array,
  spec: ImageSpec,
  target: Float32Array,
  offsetFloats: number,
  opts: DecodeOptions = {},
): Promise<SourceInfo> {
  const count = spec.size * spec.size;
  if (offsetFloats < 0 || offsetFloats + 3 * count > target.length) {
    throw new RangeError(`preprocessInto: ${3 * count} floats at offset ${offsetFloats} do not fit a target of ${target.length}`);
  }
  const { pixels, source } = await decodeResized(bytes, spec, opts);
  normalizeHwcToChw(pixels, count, normalizeTableFor(spec), target, offsetFloats);
  return source;
}

/**
 * Like preprocessInto but writes the S×S×3 uint8 pixels (HWC) into a uint8 [B,S,S,3] batch, for graphs that
 * normalise on the device (4× fewer bytes to copy to a GPU). mean/std are not applied here.
 */
export async function preprocessUint8Into(
  bytes: Uint8Array,
  spec: ImageSpec,
  target: Uint8Array,
  offsetBytes: number,
  opts: DecodeOptions = {},
): Promise<SourceInfo> {
  const n = 3 * spec.size * spec.size;
  if (offsetBytes < 0 || offsetBytes + n > target.length) {
    throw new RangeError(`preprocessUint8Into: ${n} bytes at offset ${offsetBytes} do not fit a target of ${target.length}`);
  }
  const { pixels, source } = await decodeResized(bytes, spec, opts);
  target.set(pixels.subarray(0, n), offsetBytes);
  return source;
}
