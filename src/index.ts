/**
 * grad-mimic's library API: everything the CLI does is available here for programs that embed it.
 * Each pipeline stage exports its public functions from its folder's index.
 */
export { MimicError, isMimicError, EXIT, type ErrorCode } from './errors.js';
export { log, setLogger } from './log.js';
export { VERSION } from './version.js';
export * from './mimic/index.js';
export * as onnx from './model/onnx/index.js';
export * from './wds/index.js';
export { DataCompFilters, type DataCompVerdict, type DataCompRejection, type DataCompFiltersOptions, type DataCompEvaluation } from './text/datacomp.js';
export { pythonSplit, codePointLength, readOriginalSize, type DataCompRules, type OriginalSize } from './text/datacomp-rules.js';
export { LanguageIdentifier, type LanguageGuess, type LanguageIdOptions } from './text/english.js';
export { WordNet30, readSynsetList, DATACOMP_IN21K_SHA256, type SynsetList, type FirstSynset } from './text/synsets.js';
export {
  readShardCaptions,
  readDataCompParquet,
  DATACOMP_COLUMNS,
  type ShardCaptionRecord,
  type ShardCaptionStatus,
  type ShardCaptionOptions,
  type DataCompMetadataRow,
  type DataCompColumn,
  type DataCompParquetOptions,
} from './filter/metadata.js';
export * from './model/index.js';
export * from './image/index.js';
export * from './text/tokenizer-index.js';
export * from './pipeline/index.js';
export * from './scores/index.js';
export * from './filter/index.js';
export { reshard, RESHARD_FORMAT, RESHARD_MANIFEST, type ReshardOptions, type ReshardSummary, type ReshardProgress, type ReshardKeyFormat } from './wds/reshard.js';
export { readSelection, KeyMultiset, uidWords, keyWords, rowWords, type Selection, type SelectionKind, type ReadSelectionOptions } from './wds/reshard-select.js';
export { verifyOutputShard, outputShardName, RESHARD_STATS_FORMAT, type OutputShardStats, type InputPosition } from './wds/reshard-output.js';
export * as demo from './demo/index.js';
