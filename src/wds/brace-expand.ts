/**
 * Bash-style brace expansion, with the rules of Python's `braceexpand` (which webdataset and OpenCLIP use), so
 * that a shard list means the same here as in a training script:
 * - `{a,b}` alternatives (empty ones allowed), nested groups, several groups (the leftmost varies slowest);
 * - `{1..10}`, `{10..1}`, `{1..10..3}` integer ranges, zero-padded to the longer bound when either bound has a
 *   leading zero (`{000..099}`), and `{a..e}` letter ranges;
 * - a group with neither a comma nor a range (`{x}`) stays literal; `\{`, `\}`, `\,` and `\\` are literal.
 * Unbalanced braces are an error rather than a guess.
 */
import { MimicError } from '../errors.js';

export function braceExpand(pattern: string): string[] {
  return expandSequence(pattern, 0, pattern.length, pattern).map(unescape);
}

type Part = { literal: string } | { alternatives: string[] };

function expandSequence(s: string, start: number, end: number, whole: string): string[] {
  const parts: Part[] = [];
  let literal = '';
  for (let i = start; i < end; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < end) {
      literal += c + s[i + 1];
      i++;
      continue;
    }
    if (c === '}') throw unbalanced(whole);
    if (c !== '{') {
      literal += c;
      continue;
    }
    const close = matchingBrace(s, i, end, whole);
    if (literal) parts.push({ literal });
    literal = '';
    parts.push({ alternatives: expandGroup(s, i + 1, close, whole) });
    i = close;
  }
  if (literal) parts.push({ literal });

  let out = [''];
  for (const part of parts) {
    if ('literal' in part) {
      out = out.map((prefix) => prefix + part.literal);
    } else {
      const next: string[] = [];
      for (const prefix of out) for (const alt of part.alternatives) next.push(prefix + alt);
      out = next;
    }
  }
  return out;
}

/** The contents of one `{...}` (between `open` and `close`, exclusive). */
function expandGroup(s: string, open: number, close: number, whole: string): string[] {
  const commas = topLevelCommas(s, open, close);
  if (commas.length > 0) {
    const out: string[] = [];
    let from = open;
    for (const comma of [...commas, close]) {
      out.push(...expandSequence(s, from, comma, whole));
      from = comma + 1;
    }
    return out;
  }
  const body = s.slice(open, close);
  const range = expandRange(body);
  if (range) return range;
  // Not a group: the braces are kept, and what is inside may still hold groups (`{x{1,2}}` → `{x1}`, `{x2}`).
  return expandSequence(s, open, close, whole).map((inner) => '{' + inner + '}');
}

function matchingBrace(s: string, open: number, end: number, whole: string): number {
  let depth = 0;
  for (let i = open; i < end; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  throw unbalanced(whole);
}

function topLevelCommas(s: string, open: number, close: number): number[] {
  const commas: number[] = [];
  let depth = 0;
  for (let i = open; i < close; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) commas.push(i);
  }
  return commas;
}

const INT_RANGE = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/;
const CHAR_RANGE = /^([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?$/;
/** A guard against a typo such as `{0..99999999999}` eating all memory. */
const MAX_RANGE = 10_000_000;

function expandRange(body: string): string[] | undefined {
  let m = INT_RANGE.exec(body);
  if (m) {
    const [, left, right, incrText] = m;
    const from = Number(left);
    const to = Number(right);
    const step = stepOf(incrText);
    if (Math.abs(to - from) / step > MAX_RANGE) {
      throw new MimicError('E_SHARD_SPEC', `the range {${body}} has more than ${MAX_RANGE} values`);
    }
    const padded = [left, right].some((x) => x !== '0' && x !== '-0' && /^-?0/.test(x));
    const width = padded ? Math.max(left.length, right.length) : 0;
    const out: string[] = [];
    const dir = to >= from ? 1 : -1;
    for (let v = from; dir > 0 ? v <= to : v >= to; v += dir * step) out.push(pad(v, width));
    return out;
  }
  m = CHAR_RANGE.exec(body);
  if (m) {
    const from = m[1].charCodeAt(0);
    const to = m[2].charCodeAt(0);
    const step = stepOf(m[3]);
    const dir = to >= from ? 1 : -1;
    const out: string[] = [];
    for (let v = from; dir > 0 ? v <= to : v >= to; v += dir * step) out.push(String.fromCharCode(v));
    return out;
  }
  return undefined;
}

function stepOf(text: string | undefined): number {
  const step = text === undefined ? 1 : Math.abs(Number(text));
  return step === 0 ? 1 : step;
}

function pad(v: number, width: number): string {
  if (v < 0) return '-' + String(-v).padStart(width - 1, '0');
  return String(v).padStart(width, '0');
}

function unescape(s: string): string {
  return s.includes('\\') ? s.replace(/\\(.)/g, '$1') : s;
}

function unbalanced(pattern: string): MimicError {
  return new MimicError('E_SHARD_SPEC', `unbalanced braces in the shard list "${pattern}"`, {
    hint: 'braces must pair up, as in shard-{000000..000099}.tar; write \\{ or \\} for a literal brace',
  });
}
