import { beforeAll, describe, expect, it } from 'vitest';
import { MimicError } from '../../src/errors.js';
import { htmlUnescape, loadClipTokenizer, type ClipTokenizer } from '../../src/text/tokenizer-index.js';
import { HAND_MADE, VOCAB, realCaptions, referenceIds } from './tokenizer-corpus.js';

let tok: ClipTokenizer;
beforeAll(async () => {
  tok = await loadClipTokenizer(VOCAB);
});

describe('CLIP BPE tokenizer', () => {
  it("gives OpenAI CLIP's known ids", () => {
    expect(tok.vocabSize).toBe(49408);
    expect([tok.sotId, tok.eotId]).toEqual([49406, 49407]);
    expect(Array.from(tok.tokenize('a photo of a cat', 7))).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(tok.encode('A Photo  of a CAT')).toEqual([320, 1125, 539, 320, 2368]);
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
