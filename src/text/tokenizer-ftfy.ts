import { htmlUnescape } from './tokenizer-html.js';
import { C1_CONTROLS, CHARACTER_WIDTH, CONTROL_CHARACTERS, CURLY_QUOTES, FTFY_ENTITIES, LATIN_LIGATURES } from './tokenizer-ftfy-tables.js';

/**
 * The part of `ftfy.fix_text` (ftfy 6.3.1, default settings) that OpenAI's tokenizer applies before
 * html.unescape and that can be reproduced exactly without ftfy's mojibake detector: its own HTML unescape,
 * C1 controls as Windows-1252, Latin ligatures, character width, curly quotes, line breaks, terminal escapes,
 * control characters and NFC, repeated until nothing changes, line by line.
 *
 * Not reproduced: `fix_encoding` (mojibake such as "cafÃ©" → "café", and its relatives restore_byte_a0,
 * replace_lossy_sequences, decode_inconsistent_utf8). Those need ftfy's statistical "badness" model.
 */

function charClass(table: ReadonlyMap<number, string>): RegExp {
  const parts = [...table.keys()].map((c) => `\\u{${c.toString(16)}}`);
  return new RegExp(`[${parts.join('')}]`, 'gu');
}

function byTable(table: ReadonlyMap<number, string>): (text: string) => string {
  const re = charClass(table);
  return (text) => text.replace(re, (ch) => table.get(ch.codePointAt(0)!)!);
}

const fixC1 = byTable(C1_CONTROLS);
const fixLigatures = byTable(LATIN_LIGATURES);
const fixWidth = byTable(CHARACTER_WIDTH);
const uncurlQuotes = byTable(CURLY_QUOTES);
const removeControls = byTable(CONTROL_CHARACTERS);

const FTFY_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

/** ftfy's unescape_html: only complete, ';'-terminated references; numeric ones must be consumed whole. */
function ftfyUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(FTFY_ENTITY, (m) => {
    const named = FTFY_ENTITIES.get(m);
    if (named !== undefined) return named;
    if (m.startsWith('&#')) {
      const u = htmlUnescape(m);
      return u.includes(';') ? m : u;
    }
    return m;
  });
}

const LINE_BREAKS = /\r\n|[\r\u2028\u2029\x85]/g;
const TERMINAL_ESCAPES = /\x1b\[[\d;]*[a-zA-Z]/g;
// Printable ASCII without '&', plus tab, newline and form feed: nothing below can change such text.
const UNTOUCHED = /^[\t\n\f\x20-\x25\x27-\x7e]*$/;

function fixSegment(segment: string, unescape: boolean): string {
  for (;;) {
    const before = segment;
    let t = unescape ? ftfyUnescape(segment) : segment;
    t = fixC1(t);
    t = fixLigatures(t);
    t = fixWidth(t);
    t = uncurlQuotes(t);
    t = t.replace(LINE_BREAKS, '\n');
    t = t.replace(TERMINAL_ESCAPES, '');
    t = removeControls(t);
    t = t.normalize('NFC');
    segment = t;
    if (segment === before) return segment;
  }
}

/** ftfy.fix_text without the mojibake repair (see above). Lone surrogates must already be replaced. */
export function ftfyLite(text: string): string {
  if (UNTOUCHED.test(text)) return text;
  let out = '';
  // ftfy decides 'auto' HTML unescaping per line, and once a line holds '<' it stops for the rest of the text.
  let unescape = true;
  for (let pos = 0; pos < text.length; ) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl + 1;
    const segment = text.slice(pos, end);
    if (segment.includes('<')) unescape = false;
    out += fixSegment(segment, unescape);
    pos = end;
  }
  return out;
}
