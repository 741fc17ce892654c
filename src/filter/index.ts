/** Score files, selection, exports and statistics: the library side of `mimic filter` and `mimic stats`. */
export { runFilter, type FilterOptions, type FilterSummary, type FilterProgress } from './select.js';
export { Pool as ScorePool, type PoolOptions as ScorePoolOptions, type UnitData, type UnitRequest } from './pool.js';
export type { Aggregate, Normalize } from './aggregate.js';
export { parseRule, formatRule, RuleSyntaxError, type Expr } from './expr.js';
export { ColumnCatalog, type ClipScoreSource } from './catalog.js';
export { buildDataCompColumns, type DataCompColumnsOptions } from './datacomp-columns.js';
export type { SideColumns } from './side.js';
export { ExternalSorter, type ExternalSortOptions } from './extsort.js';
export { radixSortRecords } from './radix.js';
export { parseUid, uidHex, npyHeader, writeUidNpy } from './npy.js';
export { linearPercentile, percentileRanks, floatKey, keyFloat, HighHistogram, LowHistogram } from './order-stats.js';
export { poolStats, type PoolStats, type ColumnStats, type Correlation, type StatsOptions } from './stats.js';
export { writeReport, formatStatsTable, histogramSvg, hexbinSvg, svgToPng } from './report.js';
