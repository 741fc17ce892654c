/**
 * Dense float64 row-major matrices, just enough for the reference score math. Kept separate so that the score
 * code reads like its formulas.
 */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function zeros(rows: number, cols: number): Mat {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

/** Copies number[][] into a Mat, checking that every row has `cols` entries and is finite. */
export function fromRows(rows: number[][], what: string, cols?: number): Mat {
  const r = rows.length;
  const c = cols ?? (r > 0 ? rows[0]!.length : 0);
  const m = zeros(r, c);
  for (let i = 0; i < r; i++) {
    const row = rows[i]!;
    if (!Array.isArray(row) || row.length !== c) {
      throw new RangeError(`${what}: row ${i} has ${Array.isArray(row) ? row.length : 'no'} entries, expected ${c}`);
    }
    for (let j = 0; j < c; j++) {
      const v = row[j]!;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${what}[${i}][${j}] is not a finite number`);
      m.data[i * c + j] = v;
    }
  }
  return m;
}

export function get(m: Mat, i: number, j: number): number {
  return m.data[i * m.cols + j]!;
}

/** A·B. */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new RangeError(`matmul: ${a.rows}x${a.cols} by ${b.rows}x${b.cols}`);
  const out = zeros(a.rows, b.cols);
  const n = b.cols;
  for (let i = 0; i < a.rows; i++) {
    const o = i * n;
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k]!;
      if (aik === 0) continue;
      const bo = k * n;
      for (let j = 0; j < n; j++) out.data[o + j]! += aik * b.data[bo + j]!;
    }
  }
  return out;
}

/** A·Bᵀ (rows of A against rows of B: Gram and cross-Gram matrices). */
export function matmulT(a: Mat, b: Mat): Mat {
  if (a.cols !== b.cols) throw new RangeError(`matmulT: ${a.rows}x${a.cols} by (${b.rows}x${b.cols})ᵀ`);
  const out = zeros(a.rows, b.rows);
  const d = a.cols;
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.rows; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a.data[i * d + k]! * b.data[j * d + k]!;
      out.data[i * b.rows + j] = s;
    }
  }
  return out;
}

export function transpose(a: Mat): Mat {
  const out = zeros(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j]!;
  return out;
}

/** Row i's dot product with row i of another matrix of the same shape, for every i. */
export function rowDots(a: Mat, b: Mat): Float64Array {
  const out = new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) {
    let s = 0;
    for (let k = 0; k < a.cols; k++) s += a.data[i * a.cols + k]! * b.data[i * b.cols + k]!;
    out[i] = s;
  }
  return out;
}

/** Σ_k A_ki B_ki for every column i (the diagonal of AᵀB). */
export function colDots(a: Mat, b: Mat): Float64Array {
  const out = new Float64Array(a.cols);
  for (let k = 0; k < a.rows; k++) for (let i = 0; i < a.cols; i++) out[i]! += a.data[k * a.cols + i]! * b.data[k * b.cols + i]!;
  return out;
}

export function frobeniusSquared(a: Mat): number {
  let s = 0;
  for (const v of a.data) s += v * v;
  return s;
}

export function subtract(a: Mat, b: Mat): Mat {
  const out = zeros(a.rows, a.cols);
  for (let i = 0; i < a.data.length; i++) out.data[i] = a.data[i]! - b.data[i]!;
  return out;
}

export function map(a: Mat, f: (v: number, i: number, j: number) => number): Mat {
  const out = zeros(a.rows, a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[i * a.cols + j] = f(a.data[i * a.cols + j]!, i, j);
  return out;
}
