import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMimicError } from '../../src/errors.js';
import { DataCompFilters } from '../../src/text/datacomp.js';
import {
  captionRuleFailure,
  codePointLength,
  pythonSplit,
  readOriginalSize,
  sizeRuleFailure,
} from '../../src/text/datacomp-rules.js';
import { LanguageIdentifier } from '../../src/text/english.js';
import { WordNet30, readSynsetList } from '../../src/text/synsets.js';

const PY = '/usr/bin/python3';
const tmp = mkdtempSync(join(tmpdir(), 'mimic-datacomp-'));

interface RefRow {
  words: number;
  chars: number;
  caption_ok: boolean;
  image_ok: boolean;
}

/** DataComp's pandas/numpy rules, from scripts/datacomp_filters_ref.py. */
function reference(rows: { text: string; original_width?: number | null; original_height?: number | null }[]): RefRow[] {
  const input = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const out = execFileSync(PY, ['scripts/datacomp_filters_ref.py'], { input, encoding: 'utf8' });
  return out.trim().split('\n').map((l) => JSON.parse(l) as RefRow);
}

describe('basic filter rules without fastText, against DataComp (pandas/numpy reference)', () => {
  const captions = [
    'a b c',
    'a b',
    'ab cd',
    'abc de f',
    '  leading and trailing  ',
    'tab\tseparated\twords',
    'new\nline\r\nwords',
    // whitespace Python splits on and JavaScript's \s does not (U+001C..U+001F, U+0085), and one it does not (U+FEFF)
    'file\x1cgroup\x1drecord\x1eunit\x1fsep',
    'next\x85line\x85words',
    'zero\ufeffwidth\ufeffnbsp',
    'no\u00a0break\u00a0space',
    'ideographic\u3000space\u3000here',
    'line\u2028sep\u2029para',
    '',
    '     ',
    // code points: emoji outside the BMP count once, as in Python's len
    '🐶🐱🐭🐹🐰',
    '🐶🐱🐭🐹🐰🦊',
    '🐶 🐱 🐭',
    '犬 猫 鼠',
    '犬猫鼠と遊ぶ',
    '𠀀𠀁 𠀂',
    'é́ e ë', // combining marks are code points of their own
    '👩‍👩‍👧 family', // ZWJ sequence: 5 code points + space + 6
    'A wine bottle outfitted with two forks in its cork and a duck head on top.',
  ];
  const sizes: [number | null, number | null][] = [
    [200, 200],
    [199, 400],
    [600, 200], // ratio exactly 3
    [601, 200], // just over 3
    [200, 600],
    [200, 601],
    [1024, 768],
    [0, 0],
    [0, 300],
    [null, 300],
    [300, null],
    [null, null],
    [200.5, 601.5],
    [100000, 33334],
    [100000, 33333],
  ];

  it('words, characters and caption verdicts match', () => {
    const ref = reference(captions.map((text) => ({ text, original_width: 512, original_height: 512 })));
    captions.forEach((c, i) => {
      expect({ c, words: pythonSplit(c).length }).toEqual({ c, words: ref[i].words });
      expect({ c, chars: codePointLength(c) }).toEqual({ c, chars: ref[i].chars });
      expect({ c, ok: captionRuleFailure(c) === null }).toEqual({ c, ok: ref[i].caption_ok });
    });
  });

  it('image-size verdicts match, including the boundaries and missing sizes', () => {
    const ref = reference(sizes.map(([w, h]) => ({ text: 'x y z w', original_width: w, original_height: h })));
    sizes.forEach(([w, h], i) => {
      const json: Record<string, unknown> = {};
      if (w !== null) json.original_width = w;
      if (h !== null) json.original_height = h;
      expect({ w, h, ok: sizeRuleFailure(readOriginalSize(json)) === null }).toEqual({ w, h, ok: ref[i].image_ok });
    });
  });

  it('names the failing rule', () => {
    expect(captionRuleFailure('two words')).toBe('few_words');
    expect(captionRuleFailure('a b c')).toBe('few_chars');
    expect(sizeRuleFailure(null)).toBe('no_size');
    expect(sizeRuleFailure({ width: 199, height: 500 })).toBe('small_image');
    expect(sizeRuleFailure({ width: 200, height: 600 })).toBe(null);
    expect(sizeRuleFailure({ width: 200, height: 601 })).toBe('aspect_ratio');
  });

  it('reads sizes only from original_width/original_height as finite numbers', () => {
    expect(readOriginalSize(null)).toBe(null);
    expect(readOriginalSize({ width: 640, height: 480 })).toBe(null);
    expect(readOriginalSize({ original_width: '640', original_height: 480 })).toBe(null);
    expect(readOriginalSize({ original_width: 640, original_height: 480 })).toEqual({ width: 640, height: 480 });
  });

  it('splits like Python', () => {
    expect(pythonSplit('  a  b\u3000c\x85 ')).toEqual(['a', 'b', 'c']);
    expect(pythonSplit('a\ufeffb')).toEqual(['a\ufeffb']);
    expect(pythonSplit('')).toEqual([]);
  });
});

describe('English by fastText lid.176 (ftz)', () => {
  let lid: LanguageIdentifier;
  beforeAll(async () => {
    lid = await LanguageIdentifier.load();
  });

  it('loads the quantized model shipped by fasttext.wasm.js', () => {
    expect(lid.quantized).toBe(true);
    expect(lid.modelPath).toMatch(/lid\.176\.ftz$/);
  });

  it('gives the probability published for lid.176.ftz (fasttext-langdetect, low_memory=True)', () => {
    // Python fastText with lid.176.ftz: ('__label__tr', 0.9982126951217651)
    const g = lid.identify('Bugün hava çok güzel');
    expect(g.lang).toBe('tr');
    expect(g.prob).toBeCloseTo(0.9982126951217651, 7);
  });

  it.each([
    ['A photo of a dog running on the beach', 'en'],
    ['Une photo d’un chien qui court sur la plage', 'fr'],
    ['Ein Foto von einem Hund, der am Strand läuft', 'de'],
    ['一只狗在海滩上奔跑的照片', 'zh'],
    ['Фотография собаки, бегущей по пляжу', 'ru'],
    ['Una foto de un perro corriendo en la playa', 'es'],
  ])('%s -> %s', (text, lang) => {
    expect(lid.identify(text).lang).toBe(lang);
  });

  it('probabilityOf finds any label, and the top one agrees with predict', () => {
    const text = 'Ein Foto von einem Hund am Strand';
    const top = lid.predict(text);
    expect(lid.probabilityOf(text, top.lang)).toBe(top.prob);
    const en = lid.probabilityOf(text, 'en');
    expect(en).toBeGreaterThan(0);
    expect(en).toBeLessThan(top.prob);
    expect(lid.probabilityOf(text, 'no_such_label')).toBe(0);
  });

  it('treats newlines as spaces, as DataComp does before predicting', () => {
    const a = lid.identify('a red car\nparked on the street');
    const b = lid.identify('a red car parked on the street');
    expect(a).toEqual(b);
  });

  it('an emoji-only caption carries no evidence in the ftz model: the same guess as an empty line', () => {
    // lid.176.ftz pruned its character n-grams, so emoji contribute nothing; lid.176.bin would hash them
    expect(lid.identify('🐶🏖️🌊')).toEqual(lid.identify(''));
  });

  it('refuses a file that is not a fastText model, naming it', async () => {
    const bogus = join(tmp, 'bogus.ftz');
    writeFileSync(bogus, 'not a model');
    await expect(LanguageIdentifier.load({ modelPath: bogus })).rejects.toSatisfy(
      (e: unknown) => isMimicError(e) && e.code === 'E_IO' && e.file === bogus,
    );
    await expect(LanguageIdentifier.load({ modelPath: join(tmp, 'missing.bin') })).rejects.toSatisfy(
      (e: unknown) => isMimicError(e) && e.code === 'E_IO',
    );
  });
});

describe('WordNet 3.0 first synsets, as NLTK gives them (values from NLTK 3.8 on WordNet 3.0)', () => {
  let wn: WordNet30;
  beforeAll(async () => {
    wn = await WordNet30.load();
  });

  it.each([
    ['dog', 'n', 2084071],
    ['dogs', 'n', 2084071],
    ['DOGS', 'n', 2084071],
    ['Dogs', 'n', 2084071],
    ['geese', 'n', 1855672], // noun.exc
    ['wolves', 'n', 2114100], // ves -> f
    ['ran', 'v', 1926329], // verb.exc: no noun reading, so the verb's synset comes first
    ['better', 'n', 5143558], // a noun reading exists, so it wins over the adjective
    ['eseseseseseseses', 'n', 13832599], // rules applied repeatedly
    ['\u212aing', 'n', 10231515], // KELVIN SIGN lower-cases to k, as in Python
  ])('%s -> %s %d', (word, pos, offset) => {
    expect(wn.firstSynset(word)).toEqual({ pos, offset });
  });

  it.each(['dog.', '(dog)', "dog's", 'ＤＯＧ', 'İstanbul', '🐶', '', 'zzzzqqq'])('%s has no synset', (word) => {
    expect(wn.firstSynset(word)).toBe(null);
  });
});

describe('text-based filter', () => {
  let filters: DataCompFilters;
  beforeAll(async () => {
    const list = join(tmp, 'synsets.txt');
    // dog.n.01, and the offset of run.v.01 written as a noun id: DataComp compares offsets only
    writeFileSync(list, '# test list\nn02084071 dog, domestic dog\n\nn01926329\n');
    filters = await DataCompFilters.load({ synsetsFile: list });
  });

  it('matches a caption word whose first synset is listed, after lower-casing and morphy', () => {
    expect(filters.textMatch('Two DOGS playing in the snow')).toBe(true);
    expect(filters.textMatch('a dog')).toBe(true);
  });

  it('does not strip punctuation, as DataComp does not', () => {
    expect(filters.textMatch('a photo of my dog.')).toBe(false);
    expect(filters.textMatch('(dog) photo')).toBe(false);
  });

  it('compares offsets whatever the part of speech (DataComp quirk kept)', () => {
    expect(filters.textMatch('they ran home')).toBe(true);
  });

  it('no caption, no match; text-based verdict adds the English test', () => {
    expect(filters.textMatch(null)).toBe(false);
    expect(filters.textBased('Two dogs playing in the snow')).toEqual({ keep: true });
    expect(filters.textBased('a cat on a sofa')).toEqual({ keep: false, reason: 'no_synset' });
    expect(filters.textBased('Zwei Hunde spielen im Schnee dog')).toEqual({ keep: false, reason: 'not_english' });
  });

  it('basic(): reasons in order and the English test last', () => {
    const size = { original_width: 640, original_height: 480 };
    expect(filters.basic(null, size)).toEqual({ keep: false, reason: 'no_caption' });
    expect(filters.basic('two words', size)).toEqual({ keep: false, reason: 'few_words' });
    expect(filters.basic('a b c', size)).toEqual({ keep: false, reason: 'few_chars' });
    expect(filters.basic('a dog on a beach', null)).toEqual({ keep: false, reason: 'no_size' });
    expect(filters.basic('a dog on a beach', { original_width: 150, original_height: 480 })).toEqual({ keep: false, reason: 'small_image' });
    expect(filters.basic('a dog on a beach', { original_width: 1500, original_height: 480 })).toEqual({ keep: false, reason: 'aspect_ratio' });
    expect(filters.basic('un chien sur la plage', size)).toEqual({ keep: false, reason: 'not_english' });
    expect(filters.basic('a dog on a beach', size)).toEqual({ keep: true });
  });

  it('evaluate() gives the same verdicts as the single-rule methods', () => {
    const size = { original_width: 640, original_height: 480 };
    const cases: [string | null, Record<string, unknown> | null][] = [
      [null, size],
      ['two dogs', size],
      ['Two dogs playing in the snow', size],
      ['Two dogs playing in the snow', null],
      ['Zwei Hunde spielen im Schnee', size],
      ['a cat sleeping on a sofa', { original_width: 2000, original_height: 300 }],
    ];
    for (const [caption, json] of cases) {
      const ev = filters.evaluate(caption, json);
      expect(ev.basic).toEqual(filters.basic(caption, json));
      expect(ev.textMatch).toBe(filters.textMatch(caption));
      expect(ev.textBased).toEqual(filters.textBased(caption));
      expect(ev.english).toEqual(caption === null ? null : filters.english(caption));
    }
  });

  it('english() reports the probability of English, and the top label with its probability', () => {
    const e = filters.english('a dog on a beach at sunset');
    expect(e.english).toBe(true);
    expect(e.lang).toBe('en');
    expect(e.prob).toBe(e.langProb);
    expect(e.prob).toBeGreaterThan(0.5);
    // French wins; English is looked up among all labels and is small but not zero
    const f = filters.english("Une photo d'un chien sur la plage");
    expect(f).toMatchObject({ english: false, lang: 'fr' });
    expect(f.langProb).toBeCloseTo(0.9704479575157166, 6);
    expect(f.prob).toBeGreaterThan(0);
    expect(f.prob).toBeLessThan(0.05);
  });
});

describe('synset lists', () => {
  it('reads wnids and bare offsets, ignores comments and trailing text', async () => {
    const f = join(tmp, 'list1.txt');
    writeFileSync(f, 'n01440764\r\n01443537 goldfish\n# comment\n\n');
    const list = await readSynsetList(f);
    expect([...list.offsets].sort()).toEqual([1440764, 1443537]);
    expect(list.isDataCompIn21k).toBe(false);
    expect(list.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses lemma names and empty lists, naming the line', async () => {
    const f = join(tmp, 'list2.txt');
    writeFileSync(f, 'n01440764\ngoldfish\n');
    await expect(readSynsetList(f)).rejects.toSatisfy((e: unknown) => isMimicError(e) && e.code === 'E_USAGE' && /list2\.txt:2/.test(e.message));
    const g = join(tmp, 'list3.txt');
    writeFileSync(g, '# nothing\n');
    await expect(readSynsetList(g)).rejects.toSatisfy((e: unknown) => isMimicError(e) && e.code === 'E_USAGE');
  });

  it('text-based filtering without a list is a usage error with a hint', async () => {
    const f = await DataCompFilters.load({});
    expect(() => f.textMatch('a dog')).toThrowError(/synset list/);
    expect(f.basic('a dog on a beach', { original_width: 640, original_height: 480 })).toEqual({ keep: true });
  });
});
