/**
 * The parts of DataComp's basic filter that need no model, written to give the same answer as DataComp's
 * pandas/numpy code (baselines/apply_filter.py, `load_uids_with_basic_filter_helper`) on every input:
 * Python's `str.split()` words, Python's `len()` characters (code points), and numpy's comparisons of the
 * original image size, where a missing size is NaN and so fails every test.
 */
import { DEFAULTS } from '../defaults.js';

export interface DataCompRules {
  /** A caption must have more than this many words (Python `str.split()`). */
  wordsMoreThan: number;
  /** ... and more than this many characters (code points, Python `len`). */
  charsMoreThan: number;
  /** The shorter original side must be at least this many pixels. */
  minShortSide: number;
  /** longer side / shorter side must be at most this. */
  maxAspectRatio: number;
}

/**
 * Python's `str.isspace()` characters, the separators of `str.split()` with no argument. JavaScript's `\s`
 * differs: it lacks U+001C–U+001F and U+0085 and adds U+FEFF, so it cannot be used here.
 */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const PY_WHITESPACE_ONLY = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

/** Python's `text.split()`: runs of whitespace separate words; leading and trailing whitespace yield nothing. */
export function pythonSplit(text: string): string[] {
  if (PY_WHITESPACE_ONLY.test(text)) return [];
  const parts = text.split(PY_WHITESPACE);
  // split() leaves an empty first/last piece when the text starts/ends with whitespace
  let start = 0;
  let end = parts.length;
  if (parts[0] === '') start = 1;
  if (parts[end - 1] === '') end -= 1;
  return start === 0 && end === parts.length ? parts : parts.slice(start, end);
}

const SURROGATE = /[\ud800-\udfff]/;

/** Python's `len(str)`: code points, so an emoji or a CJK character outside the BMP counts once. */
export function codePointLength(text: string): number {
  if (!SURROGATE.test(text)) return text.length;
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

export interface OriginalSize {
  width: number;
  height: number;
}

/**
 * The image's size before any resizing, from the sample's json (`original_width`, `original_height`, as
 * img2dataset writes them and as DataComp's parquet holds them). Anything but two finite numbers is missing:
 * DataComp would see NaN there, and NaN fails both the size and the aspect-ratio test.
 */
export function readOriginalSize(json: Record<string, unknown> | null): OriginalSize | null {
  if (json === null) return null;
  const width = json.original_width;
  const height = json.original_height;
  if (typeof width !== 'number' || typeof height !== 'number') return null;
  if (!Number.isFinite(width) || !Number.isFinite(height)) return null;
  return { width, height };
}

/** Why a caption fails the basic filter's text rules, or null when it passes them. */
export function captionRuleFailure(caption: string, rules: DataCompRules = DEFAULTS.datacomp): 'few_words' | 'few_chars' | null {
  if (pythonSplit(caption).length <= rules.wordsMoreThan) return 'few_words';
  if (codePointLength(caption) <= rules.charsMoreThan) return 'few_chars';
  return null;
}

/**
 * Why an original size fails the basic filter's image rules, or null when it passes. The ratio is the float64
 * division numpy does; 0 × 0 gives NaN and n × 0 gives Infinity, both of which fail as in numpy.
 */
export function sizeRuleFailure(size: OriginalSize | null, rules: DataCompRules = DEFAULTS.datacomp): 'no_size' | 'small_image' | 'aspect_ratio' | null {
  if (size === null) return 'no_size';
  const short = Math.min(size.width, size.height);
  const long = Math.max(size.width, size.height);
  if (!(short >= rules.minShortSide)) return 'small_image';
  if (!(long / short <= rules.maxAspectRatio)) return 'aspect_ratio';
  return null;
}

/** The text DataComp hands to fastText: newlines become spaces (fastText reads one line per prediction). */
export function captionForLanguageId(caption: string): string {
  return caption.includes('\n') ? caption.replaceAll('\n', ' ') : caption;
}
