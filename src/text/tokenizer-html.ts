import { DROPPED_CODEPOINTS, NAMED_REFERENCES, NUMERIC_FIXUPS } from './tokenizer-html-entities.js';

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
