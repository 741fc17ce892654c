/**
 * Columns that come from outside the score files (DataComp's metadata parquet, or caption filters run on the
 * shards), materialised per unit so that every pass of the filter can read them as cheaply as a score column.
 */
import type { ColumnKind } from './catalog.js';

export interface SideColumns {
  /** Column name → kind. Booleans are 1/0 values, NaN where unknown. */
  readonly columns: ReadonlyMap<string, ColumnKind>;
  /** Values of unit u (its n rows, in score-file order); NaN where unknown. */
  readUnit(u: number, n: number): Record<string, Float32Array>;
  /** Facts for the filter summary (rows matched, missing, sources). */
  summary(): Record<string, unknown>;
  /** Remove temporary files. */
  close(): void;
}
