import { beforeAll, describe, expect, it } from 'vitest';
import { MimicError } from '../../src/errors.js';
import { readFileSync } from 'node:fs';
import { ftfyLite, htmlUnescape, loadClipTokenizer, replaceLoneSurrogates, type ClipTokenizer } from '../../src/text/tokenizer-index.js';
import { HAND_MADE, VOCAB, realCaptions, referenceIds } from './tokenizer-corpus.js';

/** OpenAI's cleanup without ftfy: what scripts/clip_tokenizer_ref.py computes. */
let tok: ClipTokenizer;
/** The default: ftfy.fix_text reproduced except its mojibake repair. */
let lite: ClipTokenizer;
beforeAll(async () => {
  tok = await loadClipTokenizer(VOCAB, { cleanup: 'basic' });
  lite = await loadClipTokenizer(VOCAB);
});

describe('CLIP BPE tokenizer', () => {
  it("gives OpenAI CLIP's known ids", () => {
    expect(tok.vocabSize).toBe(49408);
    expect([tok.sotId, tok.eotId]).toEqual([49406, 49407]);
    expect(Array.from(tok.tokenize('a photo of a cat', 7))).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(tok.encode('A Photo  of a CAT')).toEqual([320, 1125, 539, 320, 2368]);
    expect(lite.cleanup).toBe('ftfy-lite');
    // OpenAI quirks kept: contractions split at a word's start, a spelled-out special token gets its id.
    expect(tok.encode("'sam")).toEqual([568, 687]);
    expect(tok.encode('a <|endoftext|> b')).toEqual([320, 49407, 321]);
    expect(Array.from(lite.tokenize('a photo of a cat', 7))).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
  });

  it('matches the Python reference on thousands of real captions and the hand-made cases', () => {
    const captions = [...realCaptions(), ...HAND_MADE];
    expect(captions.length).toBeGreaterThan(2500);
    const expected = referenceIds(captions);
    const mismatches = captions.map((c, i) => ({ c, got: tok.encode(c), want: expected[i] })).filter((m) => JSON.stringify(m.got) !== JSON.stringify(m.want));
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  it('truncates to the context length keeping <|endoftext|> last, and pads', () => {
    const long = 'word '.repeat(100);
    const ids = tok.tokenize(long, 77);
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(49406);
    expect(ids[76]).toBe(49407);
    expect(ids.slice(1, 76).every((v) => v === 2653)).toBe(true); // 'word</w>'
    const short = tok.tokenize('a cat', 8, 5);
    expect(Array.from(short)).toEqual([49406, 320, 2368, 49407, 5, 5, 5, 5]);
    // Exactly full: no truncation marker needed.
    expect(Array.from(tok.tokenize('a cat', 4))).toEqual([49406, 320, 2368, 49407]);
    expect(Array.from(tok.tokenize('a cat dog', 4))).toEqual([49406, 320, 2368, 49407]);
    const refs = referenceIds([long, 'a cat', HAND_MADE[2]!], 16);
    expect(Array.from(tok.tokenize(long, 16))).toEqual(refs[0]);
    expect(Array.from(tok.tokenize('a cat', 16))).toEqual(refs[1]);
    expect(Array.from(tok.tokenize(HAND_MADE[2]!, 16))).toEqual(refs[2]);
  });

  it('writes int64 rows into a batch and reports the untruncated length', () => {
    const L = 77;
    const batch = new BigInt64Array(3 * L).fill(-9n);
    const n = tok.tokenizeInto('a photo of a cat', L, batch, L);
    expect(n).toBe(7);
    expect(Array.from(batch.subarray(L, 2 * L), Number)).toEqual(Array.from(tok.tokenize('a photo of a cat', L)));
    expect(batch.subarray(0, L).every((v) => v === -9n)).toBe(true);
    expect(batch.subarray(2 * L).every((v) => v === -9n)).toBe(true);
    expect(tok.tokenizeInto('word '.repeat(100), L, batch, 0)).toBe(102);
    expect(batch[L - 1]).toBe(49407n);
    expect(() => tok.tokenizeInto('x', L, batch, 2 * L + 1)).toThrow(RangeError);
  });

  it('encodes any Unicode as UTF-8 bytes; lone surrogates become U+FFFD', () => {
    expect(tok.encode('a\ud800b')).toEqual(tok.encode('a\ufffdb'));
    expect(tok.encode('x\udfff')).toEqual(tok.encode('x\ufffd'));
    expect(tok.encode('\ud83d\ude00')).toEqual(tok.encode('😀'));
    // Every id is in the vocabulary, also for scripts the merges never saw.
    const ids = tok.encode('𓀀𓀁 ꙮ 𝕳𝖊𝖑𝖑𝖔 \u{10FFFD}');
    expect(ids.length).toBeGreaterThan(8);
    expect(ids.every((i) => i >= 0 && i < 49406)).toBe(true);
  });

  it('unescapes HTML like Python html.unescape, twice', () => {
    expect(htmlUnescape('&amp;amp; &lt;&gt; &eacute; &#128; &#x41; &notit; &ampx &bogus;')).toBe('&amp; <> é € A ¬it; &x &bogus;');
    expect(tok.encode('&amp;amp;')).toEqual(tok.encode('&'));
    // Only two rounds: the third level stays as the text "&amp;".
    expect(tok.encode('&amp;amp;amp;')).toEqual(referenceIds(['&amp;amp;amp;'])[0]);
    expect(tok.encode('&amp;amp;amp;')).toEqual([261, 6259, 282]); // '&', 'amp', ';'
  });

  it('refuses a vocabulary that is not one, naming the file', async () => {
    await expect(loadClipTokenizer('/nonexistent/vocab.txt.gz')).rejects.toMatchObject({ code: 'E_BUNDLE', file: '/nonexistent/vocab.txt.gz' });
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const bad = join(mkdtempSync(join(tmpdir(), 'mimic-tok-')), 'vocab.txt');
    writeFileSync(bad, '#version: 0.2\na b\n');
    const e = await loadClipTokenizer(bad).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MimicError);
    expect((e as MimicError).message).toMatch(/merges, expected 48894/);
  });
});

describe('Unicode coverage against the reference', () => {
  it('agrees on a sweep of code points, except those Python 3.11 does not know yet', async () => {
    const { execFileSync } = await import('node:child_process');
    const cps: number[] = [];
    for (let c = 0x80; c < 0x32000; c += 37) if (c < 0xd800 || c > 0xdfff) cps.push(c);
    cps.push(0x345, 0x17f, 0x130, 0x3a3, 0x1e9e, 0xfb01, 0xff21);
    // Code points unassigned in Python's Unicode data: the `regex` module sees them as symbols, Node (newer
    // Unicode) may see letters. That is a Unicode-version difference, documented, not a tokenizer bug.
    const unknown = new Set<number>(
      JSON.parse(
        execFileSync('/usr/bin/python3', ['-c', 'import json,sys,unicodedata; print(json.dumps([c for c in json.load(sys.stdin) if unicodedata.category(chr(c)) == "Cn"]))'], {
          input: JSON.stringify(cps),
          encoding: 'utf8',
        }),
      ) as number[],
    );
    const captions = cps.filter((c) => !unknown.has(c)).map((c) => `x${String.fromCodePoint(c)}é ${String.fromCodePoint(c)}'s`);
    const want = referenceIds(captions);
    const bad = captions.filter((c, i) => JSON.stringify(tok.encode(c)) !== JSON.stringify(want[i]));
    expect(captions.length).toBeGreaterThan(4000);
    expect(bad).toEqual([]);
  });

  it('unescapes like Python on generated reference soup', () => {
    const parts = ['&', '#', ';', 'x', 'X', '1', '2', '8', '9', 'amp', 'lt', 'not', 'in', 'copy', 'AElig', 'a', 'F', ' ', '\t', 'é', '0'];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const captions = Array.from({ length: 400 }, () => Array.from({ length: 12 }, () => parts[Math.floor(rnd() * parts.length)]).join(''));
    const want = referenceIds(captions);
    const bad = captions.filter((c, i) => JSON.stringify(tok.encode(c)) !== JSON.stringify(want[i]));
    expect(bad).toEqual([]);
  });
});

describe("ftfy-lite cleanup against real ftfy 6.3.1 (golden file made with it)", () => {
  interface Case {
    text: string;
    fixed: string;
    fixed_without_fix_encoding: string;
    ids: number[];
  }
  const golden = JSON.parse(readFileSync(new URL('./fixtures/ftfy-golden.json', import.meta.url), 'utf8')) as { ftfy: string; cases: Case[] };

  it('equals ftfy.fix_text(text, fix_encoding=False) on every case', () => {
    expect(golden.cases.length).toBeGreaterThan(500);
    const bad = golden.cases.filter((c) => ftfyLite(replaceLoneSurrogates(c.text)) !== c.fixed_without_fix_encoding);
    expect(bad).toEqual([]);
  });

  it("gives OpenAI's ids with real ftfy wherever ftfy's mojibake repair does not fire", () => {
    const comparable = golden.cases.filter((c) => c.fixed === c.fixed_without_fix_encoding);
    const bad = comparable.filter((c) => JSON.stringify(lite.encode(c.text)) !== JSON.stringify(c.ids));
    expect(bad).toEqual([]);
    // The cleanup matters: without it, curly quotes, ligatures, widths, NFC... give other ids.
    expect(comparable.filter((c) => JSON.stringify(tok.encode(c.text)) !== JSON.stringify(c.ids)).length).toBeGreaterThan(100);
  });

  it('does not repair mojibake (the documented difference)', () => {
    const moji = golden.cases.find((c) => c.text === 'cafÃ©')!;
    expect(moji.fixed).toBe('café');
    expect(ftfyLite(moji.text)).toBe('cafÃ©');
    expect(lite.encode('cafÃ©')).not.toEqual(moji.ids);
  });

  it("uncurls quotes, so contractions split as OpenAI's CLIP saw them", () => {
    expect(lite.encode('don’t “stop”')).toEqual(lite.encode('don\'t "stop"'));
    expect(lite.encode('ﬁsh Ｆｉｓｈ e\u0301')).toEqual(lite.encode('fish Fish é'));
  });
});
