import { ftfyLite } from './tokenizer-ftfy.js';
import { htmlUnescape } from './tokenizer-html.js';

export { htmlUnescape };

/**
 * OpenAI CLIP's caption cleanup around ftfy: html.unescape twice, strip, whitespace runs to one space.
 * Written against Python's semantics, which differ from JavaScript's in details that change tokens.
 */

// Python's str.isspace() / re's \s. JavaScript's \s differs: it has U+FEFF, lacks U+001C–U+001F and U+0085.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'g');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

/** Python's `re.sub(r'\s+', ' ', text).strip()` (after `text.strip()`, which it subsumes). */
export function collapseWhitespace(text: string): string {
  return text.replace(PY_SPACE_RUN, ' ').replace(PY_STRIP, '');
}

/**
 * Lone UTF-16 surrogates cannot be encoded as UTF-8 (OpenAI's tokenizer raises on them; a JS string from
 * JSON can hold them): each becomes U+FFFD, as TextEncoder would write it.
 */
export function replaceLoneSurrogates(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/**
 * How captions are cleaned before lower() and splitting: 'ftfy-lite' is OpenAI's basic_clean with the parts of
 * ftfy.fix_text that need no mojibake model (tokenizer-ftfy.ts); 'basic' leaves ftfy out entirely.
 */
export type CaptionCleanup = 'ftfy-lite' | 'basic';

/** The text OpenAI's tokenizer splits, before lower(). */
export function cleanCaption(text: string, cleanup: CaptionCleanup = 'ftfy-lite'): string {
  let t = replaceLoneSurrogates(text);
  if (cleanup === 'ftfy-lite') t = ftfyLite(t);
  return collapseWhitespace(htmlUnescape(htmlUnescape(t)));
}
