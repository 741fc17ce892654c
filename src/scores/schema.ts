/**
 * The score file's columns (DESIGN §6). Fixed here, once, so that the scorer, the filter and any reader agree.
 * One file per shard and checkpoint, every sample of the shard in shard order, failed ones included.
 */
export const SCORE_FORMAT = 'mimic-scores/1';

export const LAYERS = ['visual', 'text', 'both'] as const;
export type Layer = (typeof LAYERS)[number];

/** Why a row has no scores; `ok` rows have all of them. */
export const SAMPLE_STATUSES = [
  'ok',
  'no_image',
  'no_caption',
  'decode_error',
  'bad_caption',
  'duplicate_extension',
  'skipped', // not in --uids
] as const;
export type SampleStatus = (typeof SAMPLE_STATUSES)[number] | (string & {});

export type ColumnType = 'utf8' | 'uint32' | 'int32' | 'float32';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  /** Whether the column may hold nulls (score columns are null when status is not ok). */
  nullable: boolean;
}

export const SCORE_COLUMNS: readonly ColumnSpec[] = [
  { name: 'shard', type: 'utf8', nullable: false },
  { name: 'row', type: 'uint32', nullable: false },
  { name: 'key', type: 'utf8', nullable: false },
  { name: 'uid', type: 'utf8', nullable: true },
  { name: 'status', type: 'utf8', nullable: false },
  { name: 'error', type: 'utf8', nullable: true },
  { name: 'batch', type: 'int32', nullable: true },
  { name: 'batch_size', type: 'int32', nullable: true },
  { name: 'loss', type: 'float32', nullable: true },
  { name: 'clip_sim', type: 'float32', nullable: true },
  { name: 'ref_clip_sim', type: 'float32', nullable: true },
  ...LAYERS.flatMap((l) => [
    { name: `grad_norm_${l}`, type: 'float32' as const, nullable: true },
    { name: `mimic_proj_${l}`, type: 'float32' as const, nullable: true },
    { name: `mimic_cos_${l}`, type: 'float32' as const, nullable: true },
  ]),
];

/** The float32 score columns, in file order. */
export const FLOAT_COLUMNS = SCORE_COLUMNS.filter((c) => c.type === 'float32').map((c) => c.name);

/**
 * Keys of the Arrow schema metadata. A shard's scores are complete exactly when the final file exists and
 * these match the current run (row count, the input's size and etag, the hash of the scoring arguments).
 */
export const META = {
  format: 'mimic.format',
  toolVersion: 'mimic.tool_version',
  checkpoint: 'mimic.checkpoint',
  shard: 'mimic.shard',
  rows: 'mimic.rows',
  inputSize: 'mimic.input_size',
  inputEtag: 'mimic.input_etag',
  /** A local shard's modification time (ms): a shard rewritten with the same size is not taken as scored. */
  inputMtime: 'mimic.input_mtime',
  argsHash: 'mimic.args_hash',
  fillPolicy: 'mimic.fill_policy',
  shardStatus: 'mimic.shard_status',
  shardError: 'mimic.shard_error',
} as const;
