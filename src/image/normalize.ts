import type { ImageSpec } from './spec.js';

/**
 * uint8 → normalised float for each channel, 3×256 entries. Each entry is computed in float32 exactly as
 * torchvision does (ToTensor's `x / 255`, then Normalize's `(x - mean) / std`, every step rounded to float32),
 * so equal uint8 pixels give bit-identical floats; and a table lookup is cheaper than the arithmetic.
 */
export function normalizeTable(spec: Pick<ImageSpec, 'mean' | 'std'>): Float32Array {
  const table = new Float32Array(3 * 256);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const mean = f(spec.mean[c]!);
    const std = f(spec.std[c]!);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = f(f(f(v / 255) - mean) / std);
  }
  return table;
}

const tables = new WeakMap<object, Float32Array>();

/** The table for a spec object, built once per spec (specs come from a bundle and live for the run). */
export function normalizeTableFor(spec: Pick<ImageSpec, 'mean' | 'std'>): Float32Array {
  let t = tables.get(spec);
  if (!t) {
    t = normalizeTable(spec);
    tables.set(spec, t);
  }
  return t;
}

/**
 * Writes `pixels` (HWC uint8, `count` pixels) as CHW float32 into `target` at `offset`: the layout of one row
 * of a [B,3,S,S] pixel_values batch.
 */
export function normalizeHwcToChw(pixels: Uint8Array, count: number, table: Float32Array, target: Float32Array, offset: number): void {
  if (offset < 0 || offset + 3 * count > target.length || pixels.length < 3 * count) {
    throw new RangeError(`normalizeHwcToChw: ${3 * count} floats at offset ${offset} do not fit a target of ${target.length}`);
  }
  // One pass over the source writing three sequential planes; per-channel tables fold mean/std into the index.
  const tr = table.subarray(0, 256);
  const tg = table.subarray(256, 512);
  const tb = table.subarray(512, 768);
  const g = offset + count;
  const b = offset + 2 * count;
  for (let i = 0, j = 0; i < count; i++, j += 3) {
    target[offset + i] = tr[pixels[j]!]!;
    target[g + i] = tg[pixels[j + 1]!]!;
    target[b + i] = tb[pixels[j + 2]!]!;
  }
}
