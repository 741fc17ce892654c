/**
 * DataComp's basic and text-based filters (DataComp, baselines/apply_filter.py), per caption:
 *
 *  - basic: fastText lid.176's top label is `en`, more than 2 words (`str.split()`), more than 5 characters
 *    (code points), shorter original side ≥ 200 and aspect ratio ≤ 3 (json `original_width`/`original_height`);
 *  - text-based: English as above, and some word's first WordNet 3.0 synset is in the synset list
 *    (ImageNet-21k's ids). It does not include the basic filter's length and size rules, as in DataComp.
 */
import { DEFAULTS } from '../defaults.js';
import { MimicError } from '../errors.js';
import { captionForLanguageId, captionRuleFailure, pythonSplit, readOriginalSize, sizeRuleFailure, type DataCompRules } from './datacomp-rules.js';
import { LanguageIdentifier } from './english.js';
import { WordNet30, readSynsetList, synsetListHint, type SynsetList } from './synsets.js';

/** Why a sample fails a DataComp filter; the first failing rule in this order is reported. */
export type DataCompRejection =
  | 'no_caption'
  | 'few_words'
  | 'few_chars'
  | 'no_size'
  | 'small_image'
  | 'aspect_ratio'
  | 'not_english'
  | 'no_synset';

export interface DataCompVerdict {
  keep: boolean;
  reason?: DataCompRejection;
}

export interface DataCompEvaluation {
  basic: DataCompVerdict;
  /** null when there is no caption. */
  english: { english: boolean; prob: number; lang: string; langProb: number } | null;
  /** null without a synset list. */
  textMatch: boolean | null;
  textBased: DataCompVerdict | null;
}

export interface DataCompFiltersOptions {
  /** Synset list for the text-based filter (see readSynsetList); without it only the basic filter works. */
  synsetsFile?: string;
  /** fastText model; default lid.176.ftz from fasttext.wasm.js (DataComp used lid.176.bin). */
  lidModelPath?: string;
  /** WordNet 3.0 first-synset table; default the one shipped in src/text/data. */
  wordnetTable?: string;
  /** Thresholds; default DataComp's. */
  rules?: Partial<DataCompRules>;
}

export class DataCompFilters {
  private readonly rules: DataCompRules;
  private readonly englishLabel: string = DEFAULTS.datacomp.englishLabel;
  private readonly wordCache = new Map<string, boolean>();

  private constructor(
    private readonly lid: LanguageIdentifier,
    private readonly wordnet: WordNet30 | null,
    /** The synset list in use, or null when none was given. */
    readonly synsets: SynsetList | null,
    rules: Partial<DataCompRules> | undefined,
  ) {
    this.rules = { ...DEFAULTS.datacomp, ...rules };
  }

  static async load(opts: DataCompFiltersOptions = {}): Promise<DataCompFilters> {
    const lid = await LanguageIdentifier.load({ modelPath: opts.lidModelPath });
    let wordnet: WordNet30 | null = null;
    let synsets: SynsetList | null = null;
    if (opts.synsetsFile !== undefined) {
      synsets = await readSynsetList(opts.synsetsFile);
      wordnet = await WordNet30.load(opts.wordnetTable);
    }
    return new DataCompFilters(lid, wordnet, synsets, opts.rules);
  }

  /** The fastText model file in use. */
  get lidModelPath(): string {
    return this.lid.modelPath;
  }

  /**
   * DataComp's English test: lid.176's top label is `en`, after turning newlines into spaces. `prob` is the
   * model's probability of English (the top probability when English wins; otherwise looked up among all labels,
   * 0 under fastText's ~1e-5 floor); `lang`/`langProb` are the top label and its probability.
   */
  english(caption: string): { english: boolean; prob: number; lang: string; langProb: number } {
    const text = captionForLanguageId(caption);
    const top = this.lid.predict(text);
    const english = top.lang === this.englishLabel;
    const prob = english ? top.prob : this.lid.probabilityOf(text, this.englishLabel);
    return { english, prob, lang: top.lang, langProb: top.prob };
  }

  /**
   * Every DataComp verdict for one sample with a single fastText pass: what `basic`, `english` and (with a
   * synset list) `textMatch` / `textBased` give, for callers that store them all as columns.
   */
  evaluate(caption: string | null, json: Record<string, unknown> | null): DataCompEvaluation {
    if (caption === null) {
      const no: DataCompVerdict = { keep: false, reason: 'no_caption' };
      return { basic: no, english: null, textMatch: this.synsets === null ? null : false, textBased: this.synsets === null ? null : no };
    }
    const english = this.english(caption);
    const rule = captionRuleFailure(caption, this.rules) ?? sizeRuleFailure(readOriginalSize(json), this.rules);
    const basic: DataCompVerdict = rule !== null ? { keep: false, reason: rule } : english.english ? { keep: true } : { keep: false, reason: 'not_english' };
    if (this.synsets === null) return { basic, english, textMatch: null, textBased: null };
    const textMatch = this.textMatch(caption);
    const textBased: DataCompVerdict = !textMatch ? { keep: false, reason: 'no_synset' } : english.english ? { keep: true } : { keep: false, reason: 'not_english' };
    return { basic, english, textMatch, textBased };
  }

  /** Only the English verdict (one fastText pass, no probability of English when another language wins). */
  private isEnglish(caption: string): boolean {
    return this.lid.identify(caption).lang === this.englishLabel;
  }

  /** DataComp's basic filter for one sample: its caption and its json (for the original image size). */
  basic(caption: string | null, json: Record<string, unknown> | null): DataCompVerdict {
    if (caption === null) return { keep: false, reason: 'no_caption' };
    const text = captionRuleFailure(caption, this.rules);
    if (text !== null) return { keep: false, reason: text };
    const size = sizeRuleFailure(readOriginalSize(json), this.rules);
    if (size !== null) return { keep: false, reason: size };
    // fastText last: it is the only costly rule, and the verdict does not depend on the order
    if (!this.isEnglish(caption)) return { keep: false, reason: 'not_english' };
    return { keep: true };
  }

  /** Whether some caption word's first WordNet 3.0 synset is in the synset list (no English test). */
  textMatch(caption: string | null): boolean {
    if (this.wordnet === null || this.synsets === null) {
      throw new MimicError('E_USAGE', "DataComp's text-based filter needs a synset list", { hint: synsetListHint });
    }
    if (caption === null) return false;
    for (const word of pythonSplit(caption)) {
      if (this.wordMatches(word)) return true;
    }
    return false;
  }

  /** DataComp's text-based filter for one caption: English and a synset match. */
  textBased(caption: string | null): DataCompVerdict {
    if (caption === null) return { keep: false, reason: 'no_caption' };
    if (!this.textMatch(caption)) return { keep: false, reason: 'no_synset' };
    if (!this.isEnglish(caption)) return { keep: false, reason: 'not_english' };
    return { keep: true };
  }

  private wordMatches(word: string): boolean {
    const cached = this.wordCache.get(word);
    if (cached !== undefined) return cached;
    const first = this.wordnet!.firstSynset(word);
    // the offset alone is compared, whatever the synset's part of speech, as DataComp does
    const hit = first !== null && this.synsets!.offsets.has(first.offset);
    if (this.wordCache.size >= DEFAULTS.datacomp.wordCacheSize) this.wordCache.clear();
    this.wordCache.set(word, hit);
    return hit;
  }
}
