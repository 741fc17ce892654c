import { gunzipSync } from 'node:zlib';

/**
 * Byte-level BPE as OpenAI's CLIP defines it. Every UTF-8 byte is a printable character: the printable
 * Latin-1 bytes stand for themselves, the other 68 are moved to U+0100 and up, in byte order.
 */
export function byteCharacters(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const table = new Array<string>(256);
  for (const b of keep) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
}

/** The order the vocabulary lists byte characters in: kept bytes first, then the moved ones. */
export function byteVocabularyOrder(table: string[]): string[] {
  return [...table.map((c, b) => ({ c, b }))].sort((x, y) => x.c.charCodeAt(0) - y.c.charCodeAt(0)).map((e) => e.c);
}

/** The merge list of a `bpe_simple_vocab_16e6.txt(.gz)` file: one "a b" pair per line after a version line. */
export function readMerges(file: Buffer): string[] {
  const text = (file[0] === 0x1f && file[1] === 0x8b ? gunzipSync(file) : file).toString('utf8');
  return text.split('\n');
}

/**
 * Applies merges by rank: repeatedly join every occurrence (left to right, non-overlapping) of the adjacent
 * pair with the lowest rank, until no adjacent pair has one. `ranks` is keyed "first second" (no symbol holds a
 * space: byte 0x20 is U+0120).
 */
export function bpeMerge(symbols: string[], ranks: Map<string, number>): string[] {
  let word = symbols;
  while (word.length > 1) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i < word.length - 1; i++) {
      const r = ranks.get(word[i] + ' ' + word[i + 1]);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) break;
    const first = word[best]!;
    const second = word[best + 1]!;
    const merged: string[] = word.slice(0, best);
    for (let i = best; i < word.length; ) {
      if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i]!);
        i += 1;
      }
    }
    word = merged;
  }
  return word;
}
