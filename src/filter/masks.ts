/**
 * Loops over 0/1 row masks. They run once or more per row of the pool, so each is a small monomorphic
 * function that V8 optimises on its own (the same loops inlined in a large async function run several times
 * slower).
 */

/** Σ a[i] */
export function countOnes(a: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < a.length; i++) c += a[i];
  return c;
}

/** Σ a[i] & b[i] */
export function countAnd(a: Uint8Array, b: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < a.length; i++) c += a[i] & b[i];
  return c;
}

/** Σ a[i] & b[i] & c[i] */
export function countAnd3(a: Uint8Array, b: Uint8Array, c: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += a[i] & b[i] & c[i];
  return n;
}

/** out[i] &= a[i] */
export function andInto(out: Uint8Array, a: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] &= a[i];
}

/** out[i] &= 1 − a[i] */
export function andNotInto(out: Uint8Array, a: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] &= a[i] ^ 1;
}

/** out[i] |= a[i] */
export function orInto(out: Uint8Array, a: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] |= a[i];
}

/** Rows with mask set whose value is present (not NaN). */
export function countPresent(values: Float32Array, mask: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < values.length; i++) if (mask[i] !== 0 && values[i] === values[i]) c++;
  return c;
}

/** out[i] = v[i] ≥ t (and the other comparisons): NaN compares false, as IEEE says. */
export function cmpGe(v: Float32Array, t: number, out: Uint8Array): void {
  for (let i = 0; i < v.length; i++) out[i] = v[i] >= t ? 1 : 0;
}
export function cmpGt(v: Float32Array, t: number, out: Uint8Array): void {
  for (let i = 0; i < v.length; i++) out[i] = v[i] > t ? 1 : 0;
}
export function cmpLe(v: Float32Array, t: number, out: Uint8Array): void {
  for (let i = 0; i < v.length; i++) out[i] = v[i] <= t ? 1 : 0;
}
export function cmpLt(v: Float32Array, t: number, out: Uint8Array): void {
  for (let i = 0; i < v.length; i++) out[i] = v[i] < t ? 1 : 0;
}
export function cmpEq(v: Float32Array, t: number, out: Uint8Array): void {
  for (let i = 0; i < v.length; i++) out[i] = v[i] === t ? 1 : 0;
}
/** != is false when either side is missing (NaN), unlike IEEE's NaN != x. */
export function cmpNe(v: Float32Array, t: number, out: Uint8Array): void {
  const tOk = t === t;
  for (let i = 0; i < v.length; i++) out[i] = tOk && v[i] === v[i] && v[i] !== t ? 1 : 0;
}

