/** Score files (DESIGN §6): their schema, writer and reader, the run folders and manifests. */
export { SCORE_FORMAT, LAYERS, SAMPLE_STATUSES, SCORE_COLUMNS, FLOAT_COLUMNS, META, type Layer, type SampleStatus, type ColumnSpec, type ColumnType } from './schema.js';
export { ScoreTableBuilder, ScoreTable, writeScoreFile, encodeScoreFile, columnsToArrow, type ScoreRow, type ScoreColumnsInput } from './writer.js';
export { readScoreFile, readScoreFileSync, readScoreMeta, ScoreFileReader, type ScoreFileData, type ScoreFileMeta, type ReadOptions } from './reader.js';
export { listScoreRuns, type ScoreRuns, type CheckpointRun } from './runs.js';
export { utf8At, utf8Values, isValid, type Column, type Utf8Column, type Float32Column, type Int32Column, type Uint32Column } from './columns.js';
export {
  MANIFEST_DIR,
  RUN_FORMAT,
  readRunRecord,
  readWorkerManifest,
  readAllWorkerManifests,
  type RunIdentity,
  type RunRecord,
  type WorkerManifest,
  type ShardRecord,
  type ShardState,
} from './manifest.js';
