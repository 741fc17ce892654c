/** The WebDataset stage: shard lists, sources, tar reading and grouping, shard writing, inspection. */
export type {
  ShardInfo,
  Sample,
  SampleMember,
  SampleProblem,
  SampleProblemStatus,
  ShardReadOptions,
  ShardReadStats,
  HttpOptions,
  S3Options,
} from './types.js';
export { expandShardSpecs, shardNames, shardBasename, shardKind, type ShardKind, type ExpandOptions } from './shard-spec.js';
export { braceExpand } from './brace-expand.js';
export { openSource, statShard, type OpenedSource } from './source.js';
export { openShard, type OpenedShard } from './shard-reader.js';
export { basePlusExt, classifyMember, isUnsafeMemberName, SampleGrouper, type MemberClass } from './grouper.js';
export { readTar, type TarEntry, type TarSink } from './tar-reader.js';
export { sniffCompression, type Compression } from './decompress.js';
export { ShardWriter, type ShardWriterOptions, type SampleFiles } from './shard-writer.js';
export {
  inspectShards,
  isClean,
  sizesMap,
  writeSizesFile,
  basenameCollisions,
  formatInspectReport,
  type InspectOptions,
  type InspectReport,
  type ShardReport,
  type InspectTotals,
  type ProblemSample,
} from './inspect.js';
export { sampleCaption, sampleJson, jsonUid, type CaptionResult, type JsonResult } from './sample-fields.js';
