/**
 * CLIP's byte-level BPE tokenizer with OpenAI's semantics (simple_tokenizer.py), checked against
 * scripts/clip_tokenizer_ref.py and, for the ftfy part, against a golden file made with ftfy 6.3.1.
 *
 * Known differences to OpenAI's tokenizer (each measured; see the tests):
 * - ftfy's mojibake repair (fix_encoding and relatives) is not reproduced: "cafÃ©" stays as it is. No caption
 *   of the 124,227 test captions is affected; everything else ftfy.fix_text does is reproduced exactly.
 * - Code points assigned after Unicode 14 (9,568, e.g. CJK extensions I/J) are letters to Node 20 and unknown
 *   to Python 3.11's `regex`, so they group differently; which is "right" depends on the trainer's Python.
 * - Lone UTF-16 surrogates become U+FFFD (Python would raise on encoding them).
 * - Kept as OpenAI has them: a caption that spells "<|endoftext|>" gets the special id; 's/'t/... split even
 *   at the start of a word ("'sam" → "'s", "am"); U+0345 is dropped.
 * Truncation follows OpenCLIP (`tokens[L−1] = eot`); OpenAI's clip.tokenize would raise without truncate=True.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { MimicError } from '../errors.js';
import { bpeMerge, byteCharacters, byteVocabularyOrder, readMerges } from './bpe.js';
import { cleanCaption, type CaptionCleanup } from './tokenizer-clean.js';

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';

export interface ClipTokenizerOptions {
  /**
   * Vocabulary size including the two special tokens; the merges used are the first `vocabSize − 514` lines
   * after the version line (OpenAI: 49,408 → 48,894 merges).
   */
  vocabSize?: number;
  /** Words whose BPE is remembered (a bounded cache: cleared when full). */
  cacheSize?: number;
  /**
   * Caption cleanup: 'ftfy-lite' (default) reproduces ftfy.fix_text except its mojibake repair; 'basic' is
   * OpenAI's cleanup with no ftfy at all (what scripts/clip_tokenizer_ref.py does without --ftfy).
   */
  cleanup?: CaptionCleanup;
}

// OpenAI's pattern. After cleanup only U+0020 is left of Python's whitespace, but the `regex` module's \s (used
// by the last class) differs from JavaScript's (no U+FEFF), so that class spells the `regex` set out.
const REGEX_SPACE = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PATTERN = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${REGEX_SPACE}\\p{L}\\p{N}]+`,
  'giu',
);

const LITTLE_ENDIAN = endianness() === 'LE';

export class ClipTokenizer {
  readonly vocabSize: number;
  readonly sotId: number;
  readonly eotId: number;
  readonly cleanup: CaptionCleanup;
  private readonly encoder: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly byteChar: string[];
  private readonly cache = new Map<string, readonly number[]>();
  private readonly cacheSize: number;

  constructor(merges: string[], opts: ClipTokenizerOptions = {}, file?: string) {
    this.vocabSize = opts.vocabSize ?? 49408;
    this.cacheSize = opts.cacheSize ?? 100_000;
    this.cleanup = opts.cleanup ?? 'ftfy-lite';
    const nMerges = this.vocabSize - 512 - 2;
    // Line 0 is "#version: 0.2"; OpenAI reads lines[1 : 49152 − 256 − 2 + 1].
    const lines = merges.slice(1, 1 + nMerges);
    if (!merges[0]?.startsWith('#version') || lines.length !== nMerges) {
      throw new MimicError('E_BUNDLE', `tokenizer vocabulary has ${lines.length} merges, expected ${nMerges}`, {
        file,
        hint: "use CLIP's bpe_simple_vocab_16e6.txt.gz (a '#version' line, then one 'a b' merge per line)",
      });
    }
    this.byteChar = byteCharacters();
    const vocab = byteVocabularyOrder(this.byteChar);
    vocab.push(...vocab.map((c) => c + '</w>'));
    this.ranks = new Map();
    for (const [i, line] of lines.entries()) {
      const pair = line.split(' ');
      if (pair.length !== 2 || !pair[0] || !pair[1]) {
        throw new MimicError('E_BUNDLE', `tokenizer vocabulary line ${i + 2} is not a merge: ${JSON.stringify(line)}`, { file });
      }
      this.ranks.set(line, i);
      vocab.push(pair[0] + pair[1]);
    }
    vocab.push(START_OF_TEXT, END_OF_TEXT);
    this.encoder = new Map(vocab.map((t, i) => [t, i]));
    this.sotId = this.encoder.get(START_OF_TEXT)!;
    this.eotId = this.encoder.get(END_OF_TEXT)!;
  }

  /** Token ids of a caption, without the special tokens. */
  encode(text: string): number[] {
    const out: number[] = [];
    // U+0345 (combining ypogegrammeni) case-folds to a letter, so under IGNORECASE Python's `regex` matches it
    // with neither the letter class nor its negation and skips it; JavaScript would glue it into a word.
    const clean = cleanCaption(text, this.cleanup).toLowerCase().replace(/\u0345/g, ' ');
    for (const m of clean.matchAll(PATTERN)) {
      const ids = this.word(m[0]);
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /**
   * `<|startoftext|>` ids `<|endoftext|>`, cut to contextLength with the end token kept last (OpenCLIP's
   * `tokens[context_length − 1] = eot`), padded with padId.
   */
  tokenize(text: string, contextLength: number, padId = 0): Int32Array {
    const out = new Int32Array(contextLength);
    this.fill(text, contextLength, padId, (i, v) => {
      out[i] = v;
    });
    return out;
  }

  /**
   * Writes the tokenized caption as int64 into row `offset / contextLength` of an [B, L] input_ids batch.
   * Returns the untruncated length with both special tokens, so a caller can record truncation.
   */
  tokenizeInto(text: string, contextLength: number, target: BigInt64Array, offset: number, padId = 0): number {
    if (offset < 0 || offset + contextLength > target.length) {
      throw new RangeError(`tokenizeInto: ${contextLength} ids at offset ${offset} do not fit a target of ${target.length}`);
    }
    if (LITTLE_ENDIAN) {
      // int64 as two int32 halves: low word the id, high word its sign; avoids a BigInt per token.
      const words = new Int32Array(target.buffer, target.byteOffset + offset * 8, contextLength * 2);
      return this.fill(text, contextLength, padId, (i, v) => {
        words[2 * i] = v;
        words[2 * i + 1] = v < 0 ? -1 : 0;
      });
    }
    return this.fill(text, contextLength, padId, (i, v) => {
      target[offset + i] = BigInt(v);
    });
  }

  private fill(text: string, contextLength: number, padId: number, put: (i: number, v: number) => void): number {
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new RangeError(`context length ${contextLength} must be an integer ≥ 2`);
    }
    const ids = this.encode(text);
    const n = Math.min(ids.length, contextLength - 2);
    put(0, this.sotId);
    for (let i = 0; i < n; i++) put(i + 1, ids[i]!);
    put(n + 1, this.eotId);
    for (let i = n + 2; i < contextLength; i++) put(i, padId);
    return ids.length + 2;
  }

  /** BPE ids of one pre-token (a regex match), through the cache. */
  private word(token: string): readonly number[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    let ids: number[];
    if (token === START_OF_TEXT || token === END_OF_TEXT) {
      // OpenAI's cache is seeded with the two specials, so a caption that spells one out gets its id.
      ids = [this.encoder.get(token)!];
    } else {
      const symbols = this.byteSymbols(token);
      symbols[symbols.length - 1] += '</w>';
      ids = bpeMerge(symbols, this.ranks).map((s) => this.encoder.get(s)!);
    }
    if (this.cache.size >= this.cacheSize) this.cache.clear();
    this.cache.set(token, ids);
    return ids;
  }

  /** The UTF-8 bytes of a token, one byte character each. */
  private byteSymbols(token: string): string[] {
    const out: string[] = [];
    const bc = this.byteChar;
    for (const ch of token) {
      const cp = ch.codePointAt(0)!;
      if (cp < 0x80) out.push(bc[cp]!);
      else if (cp < 0x800) out.push(bc[0xc0 | (cp >> 6)]!, bc[0x80 | (cp & 63)]!);
      else if (cp < 0x10000) out.push(bc[0xe0 | (cp >> 12)]!, bc[0x80 | ((cp >> 6) & 63)]!, bc[0x80 | (cp & 63)]!);
      else out.push(bc[0xf0 | (cp >> 18)]!, bc[0x80 | ((cp >> 12) & 63)]!, bc[0x80 | ((cp >> 6) & 63)]!, bc[0x80 | (cp & 63)]!);
    }
    return out;
  }
}

/** Loads a CLIP BPE vocabulary (`.txt.gz` or `.txt`); errors name the file. */
export async function loadClipTokenizer(vocabPath: string, opts: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(vocabPath);
  } catch (e) {
    throw new MimicError('E_BUNDLE', `tokenizer vocabulary cannot be read: ${(e as Error).message}`, {
      file: vocabPath,
      cause: e,
      hint: "check model.json's text.vocab",
    });
  }
  let merges: string[];
  try {
    merges = readMerges(bytes);
  } catch (e) {
    throw new MimicError('E_BUNDLE', `tokenizer vocabulary is not valid gzip: ${(e as Error).message}`, { file: vocabPath, cause: e });
  }
  return new ClipTokenizer(merges, opts, vocabPath);
}
