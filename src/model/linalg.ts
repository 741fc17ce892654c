/** Small dense helpers over row-major arrays, accumulated in float64 (matrices here are at most a few MB). */

export type Matrix = Float32Array | Float64Array;

/** C[n,m] = A[n,k] · B[k,m]. */
export function matmul(a: Matrix, n: number, k: number, b: Matrix, m: number): Float64Array {
  const c = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const ci = i * m;
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      const bp = p * m;
      for (let j = 0; j < m; j++) c[ci + j]! += av * b[bp + j]!;
    }
  }
  return c;
}

/** Each row scaled to unit length (rows of zeros stay zero), as torch.nn.functional.normalize. */
export function normalizeRows(x: Matrix, n: number, d: number): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) out[i * d + j] = x[i * d + j]! * inv;
  }
  return out;
}

export function norm(x: Matrix): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! ** 2;
  return Math.sqrt(s);
}

export function dot(x: Matrix, y: Matrix): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}

/** max |a − b| / max |b|: one number for "do these tensors agree", insensitive to where values are near 0. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

/** Columns minus their mean over rows. */
export function centerColumns(x: Matrix, n: number, d: number): Float64Array {
  const out = Float64Array.from(x);
  for (let j = 0; j < d; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += out[i * d + j]!;
    m /= n;
    for (let i = 0; i < n; i++) out[i * d + j]! -= m;
  }
  return out;
}
