/**
 * A parsed rule evaluated over one unit's rows as a bitmap (bits.ts). Rows that are not ok are not masked here:
 * the caller intersects every result with the ok rows.
 */
import type { Expr, Operand } from './expr.js';
import { andBits, eqBits, geBits, gtBits, leBits, ltBits, neBits, notBits, orBits, setRows, trueBits, wordsFor } from './bits.js';

/** How a top()/bottom() rule cuts, fixed after the order-statistics passes. */
export interface RankCut {
  mode: 'none' | 'all' | 'boundary';
  dir: 'top' | 'bottom';
  boundary: number;
  /** Only some rows tied at the boundary are kept: ask `tieKeep` for each. */
  some: boolean;
}

export interface BitsContext {
  n: number;
  values: Record<string, Float32Array>;
  pct(column: string, q: number): number;
  rank(e: Extract<Expr, { kind: 'rank' }>): RankCut;
  /** Whether tied row i is kept by rank rule e (its (uid, shard, row) is at or before the cut). */
  tieKeep(e: Extract<Expr, { kind: 'rank' }>, i: number): boolean;
  /** Results already computed for some nodes (never modified by the evaluation). */
  known?: Map<Expr, Int32Array>;
}

/** A "column op constant" node in a rule, with the operator as seen from the column's side. */
export interface SimpleComparison {
  expr: Extract<Expr, { kind: 'cmp' }>;
  column: string;
  op: string;
  constant: Operand;
}

const MIRROR: Record<string, string> = { '>=': '<=', '>': '<', '<=': '>=', '<': '>', '==': '==', '!=': '!=' };

/** The first "column op constant" node of each column, over the rules in order. */
export function simpleComparisons(rules: readonly Expr[]): Map<string, SimpleComparison> {
  const out = new Map<string, SimpleComparison>();
  const visit = (e: Expr) => {
    switch (e.kind) {
      case 'cmp': {
        const { left, right } = e;
        if (left.kind === 'col' && right.kind !== 'col' && !out.has(left.column)) out.set(left.column, { expr: e, column: left.column, op: e.op, constant: right });
        else if (right.kind === 'col' && left.kind !== 'col' && !out.has(right.column)) out.set(right.column, { expr: e, column: right.column, op: MIRROR[e.op], constant: left });
        return;
      }
      case 'not':
        return visit(e.arg);
      case 'and':
      case 'or':
        for (const a of e.args) visit(a);
    }
  };
  for (const r of rules) visit(r);
  return out;
}

export function evaluateBits(e: Expr, ctx: BitsContext): Int32Array {
  const known = ctx.known?.get(e);
  if (known !== undefined) return known;
  const n = ctx.n;
  const out = new Int32Array(wordsFor(n));
  switch (e.kind) {
    case 'cmp': {
      const colOf = (o: Operand) => (o.kind === 'col' ? o.column : null);
      const other = colOf(e.left) ?? colOf(e.right)!;
      const side = (o: Operand): Float32Array | number =>
        o.kind === 'col' ? ctx.values[o.column] : o.kind === 'num' ? o.value : ctx.pct(other, o.q);
      compareBits(side(e.left), e.op, side(e.right), out);
      return out;
    }
    case 'bool':
      trueBits(ctx.values[e.column], out);
      return out;
    case 'rank': {
      const cut = ctx.rank(e);
      const v = ctx.values[e.column];
      if (cut.mode === 'none') return out;
      if (cut.mode === 'all') {
        // every present value: x == x
        for (let i = 0; i < n; i++) if (v[i] === v[i]) out[i >>> 5] |= 1 << (i & 31);
        return out;
      }
      const b = cut.boundary;
      if (cut.dir === 'top') gtBits(v, b, out);
      else ltBits(v, b, out);
      // Rows at the boundary: all of them, or those the tie-break keeps.
      const at = new Int32Array(out.length);
      eqBits(v, b, at);
      if (!cut.some) orBits(out, at);
      else for (const i of setRows(at)) if (ctx.tieKeep(e, i)) out[i >>> 5] |= 1 << (i & 31);
      return out;
    }
    case 'not':
      notBits(out, evaluateBits(e.arg, ctx), n);
      return out;
    case 'and': {
      out.set(evaluateBits(e.args[0], ctx));
      for (let k = 1; k < e.args.length; k++) andBits(out, evaluateBits(e.args[k], ctx));
      return out;
    }
    case 'or': {
      for (const a of e.args) orBits(out, evaluateBits(a, ctx));
      return out;
    }
  }
}

function compareBits(a: Float32Array | number, op: string, b: Float32Array | number, out: Int32Array): void {
  // The common "column op constant" shape runs once per row of the pool: one small loop per operator.
  if (typeof a !== 'number' && typeof b === 'number') {
    switch (op) {
      case '>=': return geBits(a, b, out);
      case '>': return gtBits(a, b, out);
      case '<=': return leBits(a, b, out);
      case '<': return ltBits(a, b, out);
      case '==': return eqBits(a, b, out);
      case '!=': return neBits(a, b, out);
    }
  }
  if (typeof a === 'number' && typeof b !== 'number') {
    // constant op column: mirror it
    switch (op) {
      case '>=': return leBits(b, a, out);
      case '>': return ltBits(b, a, out);
      case '<=': return geBits(b, a, out);
      case '<': return gtBits(b, a, out);
      case '==': return eqBits(b, a, out);
      case '!=': return neBits(b, a, out);
    }
  }
  const n = typeof a === 'number' ? (b as Float32Array).length : a.length;
  for (let i = 0; i < n; i++) {
    const x = typeof a === 'number' ? a : a[i];
    const y = typeof b === 'number' ? b : b[i];
    let r: boolean;
    switch (op) {
      case '>=': r = x >= y; break;
      case '>': r = x > y; break;
      case '<=': r = x <= y; break;
      case '<': r = x < y; break;
      case '==': r = x === y; break;
      default: r = x === x && y === y && x !== y;
    }
    if (r) out[i >>> 5] |= 1 << (i & 31);
  }
}
