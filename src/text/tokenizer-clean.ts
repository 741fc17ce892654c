import { DROPPED_CODEPOINTS, NAMED_REFERENCES, NUMERIC_FIXUPS } from './tokenizer-html-entities.js';

/**
 * OpenAI CLIP's caption cleanup, minus ftfy: html.unescape twice, strip, whitespace runs to one space.
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

// Python html's reference pattern: decimal, hex, or up to 32 characters of a name, each with an optional ';'.
const REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function numericReference(body: string): string {
  const digits = body.endsWith(';') ? body.slice(0, -1) : body;
  const hex = digits[1] === 'x' || digits[1] === 'X';
  // Very long digit strings overflow to large or infinite numbers, which land in the > U+10FFFF case below.
  const num = hex ? parseInt(digits.slice(2), 16) : parseInt(digits.slice(1), 10);
  const fix = NUMERIC_FIXUPS.get(num);
  if (fix !== undefined) return fix;
  if ((num >= 0xd800 && num <= 0xdfff) || !(num <= 0x10ffff)) return '\ufffd';
  if (DROPPED_CODEPOINTS.has(num)) return '';
  return String.fromCodePoint(num);
}

function namedReference(body: string): string {
  const exact = NAMED_REFERENCES.get(body);
  if (exact !== undefined) return exact;
  // The longest legacy name (those valid without ';') that prefixes the text, the rest kept as it is.
  const chars = Array.from(body);
  for (let x = chars.length - 1; x > 1; x--) {
    const prefix = chars.slice(0, x).join('');
    const hit = NAMED_REFERENCES.get(prefix);
    if (hit !== undefined) return hit + chars.slice(x).join('');
  }
  return '&' + body;
}

/** Python's `html.unescape`: all HTML5 named references, numeric references with the standard's fix-ups. */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(REFERENCE, (_m, body: string) => (body[0] === '#' ? numericReference(body) : namedReference(body)));
}

/** The text OpenAI's tokenizer splits, without ftfy.fix_text and before lower(). */
export function cleanCaption(text: string): string {
  return collapseWhitespace(htmlUnescape(htmlUnescape(replaceLoneSurrogates(text))));
}
