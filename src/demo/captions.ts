/**
 * Captions for the demo data. A clean caption describes its emoji with its CLDR name in one of a few phrasings
 * (the way alt texts vary); a noisy one is either another emoji's caption (*swapped*: fluent, on topic for some
 * other image, the hard case) or text unrelated to the image (*corrupted*: word salad from the emoji vocabulary or
 * boilerplate alt text of the kind web crawls are full of).
 */
import { createHash } from 'node:crypto';
import type { EmojiEntry, EmojiStyle } from './catalog.js';
import { randInt } from './random.js';

/** Alt texts that say nothing about the picture (the usual junk of web-scale pools). */
export const BOILERPLATE_CAPTIONS: readonly string[] = [
  'click here to download',
  'image',
  'untitled',
  'photo',
  'picture 1',
  'img_2041.jpg',
  'dsc00357',
  'screenshot 2019-06-12 at 10.41.07',
  'free shipping on orders over $50',
  'buy now',
  'logo',
  'banner',
  'thumbnail',
  'icon',
  'loading...',
  'product image',
  'placeholder',
  'subscribe to our newsletter',
  'read more',
  'share on facebook',
  'copyright all rights reserved',
  'best price guaranteed',
  'home page',
  'stock photo',
];

/** Stable integer hash of a string (for choosing a phrasing without consuming random draws). */
function stableHash(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

/** The caption an image of `entry` drawn in `style` gets when it is clean. */
export function cleanCaption(entry: EmojiEntry, style: EmojiStyle): string {
  const h = stableHash(`${style}:${entry.hexcode}`);
  const nameWords = new Set(entry.name.toLowerCase().split(/[^a-z0-9]+/));
  const extra = entry.keywords.filter((k) => !nameWords.has(k.toLowerCase()));
  switch (h % 5) {
    case 0:
      return entry.name;
    case 1:
      return `${entry.name} emoji`;
    case 2:
      return `emoji of ${entry.name}`;
    case 3:
      if (extra.length > 0) {
        const a = extra[(h >>> 3) % extra.length]!;
        const b = extra[(h >>> 11) % extra.length]!;
        return a === b ? `${entry.name}, ${a}` : `${entry.name}, ${a}, ${b}`;
      }
      return entry.name;
    default:
      return `${entry.name} (${entry.category})`;
  }
}

/** Lower-case words of every name and keyword: the vocabulary word-salad captions draw from. */
export function captionWords(entries: readonly EmojiEntry[]): string[] {
  const words = new Set<string>();
  for (const e of entries) {
    for (const text of [e.name, ...e.keywords]) {
      for (const w of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (w.length > 1) words.add(w);
    }
  }
  return [...words].sort();
}

/** Text unrelated to any image: boilerplate (one time in three) or 3–7 random words. */
export function corruptCaption(words: readonly string[], rand: () => number): string {
  if (rand() < 1 / 3) return BOILERPLATE_CAPTIONS[randInt(rand, BOILERPLATE_CAPTIONS.length)]!;
  const n = 3 + randInt(rand, 5);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(words[randInt(rand, words.length)]!);
  return out.join(' ');
}

/**
 * Every piece of text the demo's captions can contain, one per line: each emoji in every phrasing, its keywords,
 * the caption words and the boilerplate. The tiny demo CLIPs keep embedding rows only for the BPE tokens of this
 * corpus (BPE works word by word, so covering the words covers any caption made of them); other tokens share
 * one row.
 */
export function captionCorpus(entries: readonly EmojiEntry[]): string[] {
  const lines = new Set<string>();
  for (const e of entries) {
    lines.add(`emoji of ${e.name} emoji (${e.category})`);
    if (e.keywords.length) lines.add(`${e.name}, ${e.keywords.join(', ')}`);
  }
  for (const w of captionWords(entries)) lines.add(w);
  for (const b of BOILERPLATE_CAPTIONS) lines.add(b);
  lines.add('0 1 2 3 4 5 6 7 8 9');
  return [...lines];
}
