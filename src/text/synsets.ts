/**
 * WordNet 3.0 lookups as DataComp's text-based filter does them with NLTK: `wordnet.synsets(word)[0].offset()`.
 *
 * NLTK lower-cases the word, then for each part of speech in the order noun, verb, adjective, adverb runs
 * `morphy` (exception lists, then suffix rules applied once, then repeatedly) and returns the synsets of the
 * first base forms it finds; DataComp takes the first synset of that list and compares its offset, whatever its
 * part of speech, with ImageNet-21k's ids. Only the first synset matters, so the data shipped here
 * (src/text/data/wordnet-3.0-first-synsets.tsv.gz, built from WordNet 3.0 by scripts/build_synsets.py) holds,
 * for each lemma and part of speech, the offset of its first synset, plus the exception lists.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { MimicError, errorMessage } from '../errors.js';

export type WordNetPos = 'n' | 'v' | 'a' | 'r';
const POS_ORDER: readonly WordNetPos[] = ['n', 'v', 'a', 'r'];
const POS_COLUMN: Record<WordNetPos, number> = { n: 0, v: 1, a: 2, r: 3 };

/** NLTK's MORPHOLOGICAL_SUBSTITUTIONS, in NLTK's order (the order decides which base form comes first). */
const SUBSTITUTIONS: Record<WordNetPos, ReadonlyArray<readonly [string, string]>> = {
  n: [['s', ''], ['ses', 's'], ['ves', 'f'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']],
  v: [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']],
  a: [['er', ''], ['est', ''], ['er', 'e'], ['est', 'e']],
  r: [],
};

/** sha256 of DataComp's `imagenet21k_wordnet_ids.txt` (the same bytes as timm's imagenet21k_goog_synsets.txt). */
export const DATACOMP_IN21K_SHA256 = '66362bdedf36d933382edca5493fc562dcc17128ce36403c9e730a75f48cb2f2';

const TABLE_NAME = 'wordnet-3.0-first-synsets.tsv.gz';

/** The shipped table, found from src/ (tests) and from dist/ (the build does not copy data files). */
export function bundledWordNetTablePath(): string {
  for (const rel of [`./data/${TABLE_NAME}`, `../../src/text/data/${TABLE_NAME}`]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return fileURLToPath(new URL(`./data/${TABLE_NAME}`, import.meta.url));
}

export interface FirstSynset {
  pos: WordNetPos;
  /** WordNet 3.0 byte offset of the synset in its data file (the digits of a wnid). */
  offset: number;
}

/** WordNet 3.0's first synset of any word, as NLTK finds it. */
export class WordNet30 {
  private constructor(
    /** lemma -> first offsets for n, v, a, r (-1 where the lemma lacks that part of speech). */
    private readonly lemmas: Map<string, Int32Array>,
    private readonly exceptions: Record<WordNetPos, Map<string, string[]>>,
  ) {}

  static async load(file: string = bundledWordNetTablePath()): Promise<WordNet30> {
    let text: string;
    try {
      text = gunzipSync(await readFile(file)).toString('utf8');
    } catch (e) {
      throw new MimicError('E_IO', `cannot read the WordNet 3.0 table ${file}: ${errorMessage(e)}`, {
        file,
        hint: 'reinstall grad-mimic, or rebuild the table with scripts/build_synsets.py build',
      });
    }
    return WordNet30.parse(text, file);
  }

  static parse(text: string, file = '<table>'): WordNet30 {
    const lemmas = new Map<string, Int32Array>();
    const exceptions: Record<WordNetPos, Map<string, string[]>> = { n: new Map(), v: new Map(), a: new Map(), r: new Map() };
    let lineNo = 0;
    for (const line of text.split('\n')) {
      lineNo += 1;
      if (line === '' || line.startsWith('#')) continue;
      const cols = line.split('\t');
      if (line.startsWith('!')) {
        const pos = line.slice(1, 2) as WordNetPos;
        if (!(pos in exceptions) || cols.length !== 3) throw badTable(file, lineNo);
        exceptions[pos].set(cols[1], cols[2] === '' ? [] : cols[2].split(' '));
        continue;
      }
      if (cols.length !== 5) throw badTable(file, lineNo);
      const offsets = new Int32Array(4);
      for (let i = 0; i < 4; i++) offsets[i] = cols[i + 1] === '' ? -1 : Number(cols[i + 1]);
      lemmas.set(cols[0], offsets);
    }
    if (lemmas.size === 0) throw badTable(file, lineNo);
    return new WordNet30(lemmas, exceptions);
  }

  /** Number of lemmas in the table. */
  get size(): number {
    return this.lemmas.size;
  }

  private has(form: string, pos: WordNetPos): boolean {
    const offsets = this.lemmas.get(form);
    return offsets !== undefined && offsets[POS_COLUMN[pos]] >= 0;
  }

  /** The first form NLTK's `_morphy(form, pos)` returns, or null when it returns nothing. */
  morphyFirst(form: string, pos: WordNetPos): string | null {
    const exc = this.exceptions[pos].get(form);
    if (exc !== undefined) {
      // a listed irregular form is resolved by the list alone, never by the suffix rules
      if (this.has(form, pos)) return form;
      for (const base of exc) if (this.has(base, pos)) return base;
      return null;
    }
    if (this.has(form, pos)) return form;
    let forms = applyRules([form], SUBSTITUTIONS[pos]);
    while (forms.length > 0) {
      for (const f of forms) if (this.has(f, pos)) return f;
      forms = applyRules(forms, SUBSTITUTIONS[pos]);
    }
    return null;
  }

  /** `wordnet.synsets(word)[0]` reduced to its part of speech and offset; null when NLTK finds no synset. */
  firstSynset(word: string): FirstSynset | null {
    const lower = word.toLowerCase();
    for (const pos of POS_ORDER) {
      const form = this.morphyFirst(lower, pos);
      if (form !== null) return { pos, offset: this.lemmas.get(form)![POS_COLUMN[pos]] };
    }
    return null;
  }
}

function applyRules(forms: string[], rules: ReadonlyArray<readonly [string, string]>): string[] {
  // duplicates are dropped: NLTK keeps them, but a repeated form only repeats work, never changes the first match
  const out: string[] = [];
  const seen = new Set<string>();
  for (const form of forms) {
    for (const [old, repl] of rules) {
      if (form.endsWith(old)) {
        const next = form.slice(0, form.length - old.length) + repl;
        if (!seen.has(next)) {
          seen.add(next);
          out.push(next);
        }
      }
    }
  }
  return out;
}

function badTable(file: string, line: number): MimicError {
  return new MimicError('E_IO', `${file}:${line} is not a WordNet first-synset table line`, {
    file,
    hint: 'rebuild it with scripts/build_synsets.py build',
  });
}

/** A set of WordNet 3.0 synsets to match caption words against (DataComp: ImageNet-21k's 21,843 ids). */
export interface SynsetList {
  /** Synset offsets; the part of speech is dropped, as DataComp's `int(wnid[1:])` drops it. */
  offsets: Set<number>;
  file: string;
  sha256: string;
  /** Whether the file is byte for byte DataComp's imagenet21k_wordnet_ids.txt. */
  isDataCompIn21k: boolean;
}

/**
 * Reads a synset list: one WordNet 3.0 id per line, `n01440764` as DataComp, BiT and timm write them (a bare
 * offset `01440764` is accepted too). Text after the id on the same line (e.g. `n01440764 tench, Tinca tinca`)
 * is ignored, as are blank lines and lines starting with `#`. Lemma names are refused: a lemma names several
 * synsets, and guessing which one would not be DataComp's filter.
 */
export async function readSynsetList(file: string): Promise<SynsetList> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch (e) {
    throw new MimicError('E_IO', `cannot read the synset list ${file}: ${errorMessage(e)}`, { file, hint: synsetListHint });
  }
  const offsets = new Set<number>();
  const lines = raw.toString('utf8').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const id = line.split(/\s+/, 1)[0];
    const m = /^[nvasr]?(\d{1,8})$/.exec(id);
    if (m === null) {
      throw new MimicError('E_USAGE', `${file}:${i + 1}: "${id.slice(0, 40)}" is not a WordNet 3.0 synset id`, {
        file,
        hint: synsetListHint,
      });
    }
    offsets.add(Number(m[1]));
  }
  if (offsets.size === 0) {
    throw new MimicError('E_USAGE', `the synset list ${file} holds no synset ids`, { file, hint: synsetListHint });
  }
  const sha256 = createHash('sha256').update(raw).digest('hex');
  return { offsets, file, sha256, isDataCompIn21k: sha256 === DATACOMP_IN21K_SHA256 };
}

export const synsetListHint =
  "pass DataComp's ImageNet-21k list (imagenet21k_wordnet_ids.txt from DataComp's baseline assets, the same file " +
  "as timm's imagenet21k_goog_synsets.txt, sha256 66362bde…): one WordNet 3.0 id such as n01440764 per line";
