/**
 * The selection language of `--keep` / `--drop`: a hand-written tokenizer and recursive-descent parser, so a
 * rule is data, never code. Grammar (keywords lower-case):
 *
 *   rule    := or
 *   or      := and ('or' and)*
 *   and     := not ('and' not)*
 *   not     := 'not' not | atom
 *   atom    := '(' rule ')' | rank | operand (cmp operand)?      — a bare operand must be a boolean column
 *   rank    := ('top' | 'bottom') '(' column ',' count ')'      — count: N rows or P% of the ok rows
 *   operand := column | number | '-' number | pNN              — pNN: a percentile of the column compared with
 *   cmp     := '<' | '<=' | '>' | '>=' | '==' | '=' | '!='
 *
 * Examples: `mimic_visual >= p70 and clip_score >= 0.28`, `not (loss > p99.5)`, `top(clip_score, 30%)`.
 */
import { MimicError } from '../errors.js';

export type CmpOp = '<' | '<=' | '>' | '>=' | '==' | '!=';

export type Operand =
  | { kind: 'num'; value: number; pos: number }
  | { kind: 'pct'; q: number; text: string; pos: number }
  | { kind: 'col'; name: string; column: string; pos: number };

export type Expr =
  | { kind: 'cmp'; op: CmpOp; left: Operand; right: Operand; pos: number }
  | { kind: 'bool'; name: string; column: string; pos: number }
  | { kind: 'rank'; dir: 'top' | 'bottom'; name: string; column: string; count: number; percent: boolean; pos: number }
  | { kind: 'not'; arg: Expr; pos: number }
  | { kind: 'and'; args: Expr[]; pos: number }
  | { kind: 'or'; args: Expr[]; pos: number };

/** What the parser needs to know about column names: the canonical column a name stands for, and its kind. */
export interface ColumnResolver {
  resolve(name: string): { column: string; kind: 'number' | 'boolean' } | null;
  /** Names to suggest in an "unknown column" message. */
  names(): string[];
}

type Tok =
  | { t: 'num'; v: number; pos: number; text: string }
  | { t: 'pctnum'; v: number; pos: number; text: string } // 30%
  | { t: 'pct'; v: number; pos: number; text: string } // p70
  | { t: 'id'; v: string; pos: number; text: string }
  | { t: 'op'; v: CmpOp; pos: number; text: string }
  | { t: '(' | ')' | ',' | '-'; pos: number; text: string }
  | { t: 'end'; pos: number; text: string };

const NUM_RE = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;
const ID_RE = /^[A-Za-z_][A-Za-z0-9_]*/;
const PCT_RE = /^p(\d+(?:\.\d*)?|\.\d+)(?![A-Za-z0-9_.])/;

export class RuleSyntaxError extends MimicError {
  constructor(readonly rule: string, readonly pos: number, message: string, hint?: string) {
    const caret = `\n    ${rule}\n    ${' '.repeat(pos)}^`;
    super('E_FILTER', `${message} at character ${pos + 1} of rule "${rule}"${caret}`, { hint });
  }
}

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    if (ch === '(' || ch === ')' || ch === ',' || ch === '-') {
      toks.push({ t: ch, pos: i, text: ch });
      i++;
      continue;
    }
    const op = /^(<=|>=|==|!=|<|>|=)/.exec(rest);
    if (op) {
      const v = (op[1] === '=' ? '==' : op[1]) as CmpOp;
      toks.push({ t: 'op', v, pos: i, text: op[1] });
      i += op[1].length;
      continue;
    }
    const pct = PCT_RE.exec(rest);
    if (pct) {
      toks.push({ t: 'pct', v: Number(pct[1]), pos: i, text: pct[0] });
      i += pct[0].length;
      continue;
    }
    const num = NUM_RE.exec(rest);
    if (num) {
      const after = src[i + num[0].length];
      if (after === '%') {
        toks.push({ t: 'pctnum', v: Number(num[0]), pos: i, text: num[0] + '%' });
        i += num[0].length + 1;
      } else {
        if (after !== undefined && /[A-Za-z_]/.test(after)) {
          throw new RuleSyntaxError(src, i + num[0].length, `unexpected "${after}" after the number ${num[0]}`);
        }
        toks.push({ t: 'num', v: Number(num[0]), pos: i, text: num[0] });
        i += num[0].length;
      }
      continue;
    }
    const id = ID_RE.exec(rest);
    if (id) {
      toks.push({ t: 'id', v: id[0], pos: i, text: id[0] });
      i += id[0].length;
      continue;
    }
    const hint = ch === '&' || ch === '|' || ch === '!' ? 'use the words and, or, not' : undefined;
    throw new RuleSyntaxError(src, i, `unexpected character "${ch}"`, hint);
  }
  toks.push({ t: 'end', pos: src.length, text: '' });
  return toks;
}

const KEYWORDS = new Set(['and', 'or', 'not', 'top', 'bottom']);

class Parser {
  private k = 0;
  constructor(private readonly src: string, private readonly toks: Tok[], private readonly cols: ColumnResolver) {}

  private peek(): Tok {
    return this.toks[this.k];
  }

  private next(): Tok {
    return this.toks[this.k++];
  }

  private isWord(w: string): boolean {
    const t = this.peek();
    return t.t === 'id' && t.v === w;
  }

  private fail(tok: Tok, message: string, hint?: string): never {
    throw new RuleSyntaxError(this.src, tok.pos, message, hint);
  }

  private describe(tok: Tok): string {
    return tok.t === 'end' ? 'the end of the rule' : `"${tok.text}"`;
  }

  parse(): Expr {
    if (this.peek().t === 'end') this.fail(this.peek(), 'empty rule', 'write a condition such as "mimic_visual >= p70"');
    const e = this.or();
    const t = this.peek();
    if (t.t !== 'end') {
      this.fail(t, `unexpected ${this.describe(t)}`, t.t === 'op' ? 'comparisons do not chain: write "a < x and x < b"' : 'join conditions with and / or');
    }
    return e;
  }

  private or(): Expr {
    const pos = this.peek().pos;
    const args = [this.and()];
    while (this.isWord('or')) {
      this.next();
      args.push(this.and());
    }
    return args.length === 1 ? args[0] : { kind: 'or', args, pos };
  }

  private and(): Expr {
    const pos = this.peek().pos;
    const args = [this.not()];
    while (this.isWord('and')) {
      this.next();
      args.push(this.not());
    }
    return args.length === 1 ? args[0] : { kind: 'and', args, pos };
  }

  private not(): Expr {
    if (this.isWord('not')) {
      const t = this.next();
      return { kind: 'not', arg: this.not(), pos: t.pos };
    }
    return this.atom();
  }

  private atom(): Expr {
    const t = this.peek();
    if (t.t === '(') {
      this.next();
      const e = this.or();
      const close = this.peek();
      if (close.t !== ')') this.fail(close, `expected ")" but found ${this.describe(close)}`, `the "(" at character ${t.pos + 1} is not closed`);
      this.next();
      return e;
    }
    if (t.t === 'id' && (t.v === 'top' || t.v === 'bottom') && this.toks[this.k + 1]?.t === '(') return this.rank();
    const left = this.operand();
    const opTok = this.peek();
    if (opTok.t !== 'op') {
      if (left.kind === 'col') {
        const r = this.cols.resolve(left.name)!;
        if (r.kind === 'boolean') return { kind: 'bool', name: left.name, column: left.column, pos: left.pos };
        this.fail(opTok, `${left.name} is a number: compare it, e.g. "${left.name} >= p70"`, opTok.t === 'end' ? undefined : `found ${this.describe(opTok)} instead of a comparison`);
      }
      this.fail(opTok, `expected a comparison (<, <=, >, >=, ==, !=) after "${this.src.slice(left.pos, opTok.pos).trim()}" but found ${this.describe(opTok)}`);
    }
    this.next();
    const right = this.operand();
    const cmp = { kind: 'cmp' as const, op: opTok.v as CmpOp, left, right, pos: left.pos };
    this.checkComparison(cmp, opTok);
    return cmp;
  }

  private checkComparison(c: Extract<Expr, { kind: 'cmp' }>, opTok: Tok): void {
    const cols = [c.left, c.right].filter((o) => o.kind === 'col');
    const pcts = [c.left, c.right].filter((o) => o.kind === 'pct');
    if (cols.length === 0) {
      this.fail(c.left.kind === 'pct' ? c.left as never : opTok, 'a comparison needs a column on one side', 'e.g. "clip_score >= 0.28"');
    }
    if (pcts.length > 0 && cols.length !== 1) {
      const p = pcts[0] as Extract<Operand, { kind: 'pct' }>;
      this.fail(opTok, `${p.text} needs exactly one column on the other side of the comparison to be a percentile of`);
    }
    for (const o of cols) {
      const r = this.cols.resolve((o as Extract<Operand, { kind: 'col' }>).name)!;
      if (r.kind === 'boolean' && (pcts.length > 0)) {
        this.fail(o as never, `${(o as { name: string }).name} is a true/false column: percentiles of it mean nothing`, `write "${(o as { name: string }).name}" or "not ${(o as { name: string }).name}"`);
      }
    }
  }

  private operand(): Operand {
    const t = this.next();
    switch (t.t) {
      case 'num':
        return { kind: 'num', value: t.v, pos: t.pos };
      case '-': {
        const n = this.next();
        if (n.t !== 'num') this.fail(n, `expected a number after "-" but found ${this.describe(n)}`);
        return { kind: 'num', value: -n.v, pos: t.pos };
      }
      case 'pct':
        if (!(t.v >= 0 && t.v <= 100)) this.fail(t, `percentile ${t.text} is outside p0..p100`);
        return { kind: 'pct', q: t.v, text: t.text, pos: t.pos };
      case 'id':
        return this.column(t);
      case 'pctnum':
        this.fail(t, `"${t.text}" is only meaningful in top(column, ${t.text}) or bottom(...)`, `for a percentile threshold write p${100 - t.v} or p${t.v}`);
      // eslint-disable-next-line no-fallthrough
      default:
        this.fail(t, `expected a column, a number or a percentile such as p70, but found ${this.describe(t)}`);
    }
  }

  private column(t: Extract<Tok, { t: 'id' }>): Extract<Operand, { kind: 'col' }> {
    if (KEYWORDS.has(t.v)) this.fail(t, `expected a column but found the keyword "${t.v}"`);
    const r = this.cols.resolve(t.v);
    if (!r) {
      const close = suggest(t.v, this.cols.names());
      this.fail(t, `unknown column "${t.v}"`, (close ? `did you mean ${close}? ` : '') + `columns: ${this.cols.names().join(', ')}`);
    }
    return { kind: 'col', name: t.v, column: r.column, pos: t.pos };
  }

  private rank(): Expr {
    const kw = this.next() as Extract<Tok, { t: 'id' }>;
    this.next(); // '('
    const colTok = this.next();
    if (colTok.t !== 'id') this.fail(colTok, `expected a column name in ${kw.v}(...) but found ${this.describe(colTok)}`);
    const col = this.column(colTok);
    if (this.cols.resolve(col.name)!.kind === 'boolean') this.fail(colTok, `${col.name} is a true/false column and cannot be ranked`);
    const comma = this.next();
    if (comma.t !== ',') this.fail(comma, `expected "," after the column in ${kw.v}(...) but found ${this.describe(comma)}`);
    const n = this.next();
    let count: number;
    let percent: boolean;
    if (n.t === 'pctnum') {
      if (!(n.v >= 0 && n.v <= 100)) this.fail(n, `${n.text} is outside 0%..100%`);
      count = n.v;
      percent = true;
    } else if (n.t === 'num') {
      if (!Number.isInteger(n.v)) this.fail(n, `${kw.v}(...) takes a whole number of rows or a percentage such as 30%`);
      count = n.v;
      percent = false;
    } else {
      this.fail(n, `expected a row count or a percentage (e.g. 1000 or 30%) but found ${this.describe(n)}`);
    }
    const close = this.next();
    if (close.t !== ')') this.fail(close, `expected ")" but found ${this.describe(close)}`);
    return { kind: 'rank', dir: kw.v as 'top' | 'bottom', name: col.name, column: col.column, count, percent, pos: kw.pos };
  }
}

/** The closest known name within edit distance 2, for "did you mean". */
function suggest(name: string, names: string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const n of names) {
    const d = editDistance(name.toLowerCase(), n.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = n;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** Parse one rule. Errors are E_FILTER with the character position and a caret under it. */
export function parseRule(src: string, cols: ColumnResolver): Expr {
  return new Parser(src, tokenize(src), cols).parse();
}

/** Every percentile (column, q) and rank predicate a rule needs, for the passes that precompute them. */
export function collectNeeds(e: Expr, out: { percentiles: { column: string; q: number }[]; ranks: Extract<Expr, { kind: 'rank' }>[]; columns: Set<string> }): void {
  switch (e.kind) {
    case 'cmp': {
      const col = [e.left, e.right].find((o) => o.kind === 'col') as Extract<Operand, { kind: 'col' }> | undefined;
      for (const o of [e.left, e.right]) {
        if (o.kind === 'col') out.columns.add(o.column);
        if (o.kind === 'pct' && col) out.percentiles.push({ column: col.column, q: o.q });
      }
      return;
    }
    case 'bool':
      out.columns.add(e.column);
      return;
    case 'rank':
      out.columns.add(e.column);
      out.ranks.push(e);
      return;
    case 'not':
      collectNeeds(e.arg, out);
      return;
    case 'and':
    case 'or':
      for (const a of e.args) collectNeeds(a, out);
  }
}

/** A canonical text of a rule (for the summary): columns by their canonical names, spacing normalised. */
export function formatRule(e: Expr): string {
  const op = (o: Operand) => (o.kind === 'num' ? String(o.value) : o.kind === 'pct' ? o.text : o.column);
  switch (e.kind) {
    case 'cmp':
      return `${op(e.left)} ${e.op} ${op(e.right)}`;
    case 'bool':
      return e.column;
    case 'rank':
      return `${e.dir}(${e.column}, ${e.count}${e.percent ? '%' : ''})`;
    case 'not':
      return `not ${wrap(e.arg)}`;
    case 'and':
      return e.args.map(wrap).join(' and ');
    case 'or':
      return e.args.map(wrap).join(' or ');
  }
}

function wrap(e: Expr): string {
  return e.kind === 'and' || e.kind === 'or' ? `(${formatRule(e)})` : formatRule(e);
}
