/**
 * The column names a rule may use: every float column of the score files, short aliases, and the columns that
 * DataComp's metadata or caption filters add when they are given. Aliases:
 *   mimic_visual / mimic_text / mimic_both → mimic_proj_visual / mimic_proj_text / mimic_proj_both; mimic → mimic_proj_both
 *   clip_score → ref_clip_sim (the reference model's image–text cosine, from `mimic score
 *                --reference-clip-score`), or clip_l14 / clip_b32 (DataComp's metadata) when chosen with
 *                --clip-score, and clip_l14 by default when DataComp metadata is given.
 */
import { MimicError } from '../errors.js';
import { FLOAT_COLUMNS } from '../scores/schema.js';
import type { ColumnResolver } from './expr.js';

export type ColumnKind = 'number' | 'boolean';
export type ClipScoreSource = 'ref' | 'b32' | 'l14';

/** Columns DataComp's metadata and filters can provide (see datacomp-columns.ts). */
export const DATACOMP_RULE_COLUMNS: Readonly<Record<string, ColumnKind>> = {
  clip_b32: 'number',
  clip_l14: 'number',
  basic: 'boolean',
  text_match: 'boolean',
  english: 'boolean',
  english_prob: 'number',
};

export class ColumnCatalog implements ColumnResolver {
  private readonly aliases = new Map<string, string>();
  private readonly kinds = new Map<string, ColumnKind>();

  /**
   * @param side columns provided besides the score files (DataComp), with their kinds
   * @param clipScore what `clip_score` stands for
   */
  constructor(side: ReadonlyMap<string, ColumnKind> = new Map(), clipScore: ClipScoreSource = 'ref') {
    for (const c of FLOAT_COLUMNS) this.kinds.set(c, 'number');
    for (const [c, k] of side) this.kinds.set(c, k);
    for (const l of ['visual', 'text', 'both']) this.aliases.set(`mimic_${l}`, `mimic_proj_${l}`);
    // The default layer: both heads as one vector found bad pairs best in the demo benchmark (README, Quality).
    this.aliases.set('mimic', 'mimic_proj_both');
    const clip = clipScore === 'ref' ? 'ref_clip_sim' : `clip_${clipScore}`;
    if (!this.kinds.has(clip)) {
      throw new MimicError('E_USAGE', `--clip-score ${clipScore} needs ${clip}, which only DataComp metadata provides`,
        { hint: 'pass --metadata with DataComp parquet files, or use --clip-score ref' });
    }
    this.aliases.set('clip_score', clip);
  }

  /** A canonical column name, or null. */
  canonical(name: string): string | null {
    const c = this.aliases.get(name) ?? name;
    return this.kinds.has(c) ? c : null;
  }

  resolve(name: string): { column: string; kind: ColumnKind } | null {
    const c = this.canonical(name);
    return c === null ? null : { column: c, kind: this.kinds.get(c)! };
  }

  kind(column: string): ColumnKind | undefined {
    return this.kinds.get(column);
  }

  names(): string[] {
    return [...this.aliases.keys(), ...this.kinds.keys()];
  }

  /** alias → canonical, for the summary. */
  aliasMap(): Record<string, string> {
    return Object.fromEntries(this.aliases);
  }

  isScoreColumn(column: string): boolean {
    return FLOAT_COLUMNS.includes(column);
  }
}
