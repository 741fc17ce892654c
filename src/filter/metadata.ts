/**
 * The inputs of the caption/metadata filters: captions and json from shards (without reading image bytes), and
 * DataComp's metadata parquet files (uid, text, original size, CLIP scores), streamed one row group at a time.
 */
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type Compressors, type FileMetaData } from 'hyparquet';
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage } from '../errors.js';
import { openShard } from '../wds/shard-reader.js';
import { jsonUid, sampleCaption, sampleJson } from '../wds/sample-fields.js';
import type { SampleProblemStatus } from '../wds/types.js';

export interface ShardCaptionOptions {
  captionKey?: string;
  metadataKey?: string;
  /** Allow `pipe:CMD` shard URLs (they run a shell command). */
  allowPipe?: boolean;
}

/** Why a record's caption or json could not be used; `ok` when both were read (or are simply absent). */
export type ShardCaptionStatus = 'ok' | 'no_caption' | 'bad_caption' | 'bad_json' | SampleProblemStatus;

export interface ShardCaptionRecord {
  /** Index of the sample in its shard (the score files' `row`). */
  row: number;
  key: string;
  /** The json's `uid` when it is a string, else null. */
  uid: string | null;
  /** The caption member decoded as strict UTF-8; null when absent or not valid UTF-8 (see status). */
  caption: string | null;
  /** The metadata member parsed as a JSON object; null when absent, unparseable or not an object. */
  json: Record<string, unknown> | null;
  status: ShardCaptionStatus;
  /** What went wrong, for status other than `ok` and `no_caption`; null otherwise. */
  error: string | null;
}


/**
 * Every sample of one shard, in shard order, with its caption and json. Other members (images) are listed by
 * the tar reader but their bytes are skipped. A shard that breaks part way yields what it could read and then
 * throws the reader's E_TAR / E_SOURCE error, so the caller records the shard as failed.
 */
export async function* readShardCaptions(shardUrl: string, opts: ShardCaptionOptions = {}): AsyncGenerator<ShardCaptionRecord> {
  const captionKey = (opts.captionKey ?? DEFAULTS.wds.captionKey).toLowerCase();
  const metadataKey = (opts.metadataKey ?? DEFAULTS.wds.metadataKey).toLowerCase();
  const shard = await openShard(shardUrl, {
    allowPipe: opts.allowPipe,
    wantExtensions: (ext) => ext === captionKey || ext === metadataKey,
  });
  try {
    for await (const sample of shard.samples) {
      let status: ShardCaptionStatus = 'ok';
      let error: string | null = null;
      const fail = (s: ShardCaptionStatus, message: string) => {
        if (status === 'ok' || status === 'no_caption') {
          status = s;
          error = message;
        }
      };
      if (sample.problem) fail(sample.problem.status, sample.problem.message);

      let caption: string | null = null;
      const c = sampleCaption(sample, captionKey);
      if (c.ok) caption = c.caption;
      else if (c.status === 'no_caption') {
        if (status === 'ok') status = 'no_caption';
      } else fail(c.status, c.message);

      let json: Record<string, unknown> | null = null;
      const j = sampleJson(sample, metadataKey);
      if (j.ok) json = j.json;
      else fail('bad_json', j.message);
      const uid = jsonUid(json);
      yield { row: sample.row, key: sample.key, uid, caption, json, status, error };
    }
  } finally {
    shard.close();
  }
}


/** DataComp metadata columns this reader knows (its parquet files also hold url, sha256, face_bboxes). */
export type DataCompColumn = 'text' | 'original_width' | 'original_height' | 'clip_b32_similarity_score' | 'clip_l14_similarity_score';

export const DATACOMP_COLUMNS: readonly DataCompColumn[] = [
  'text',
  'original_width',
  'original_height',
  'clip_b32_similarity_score',
  'clip_l14_similarity_score',
];

export interface DataCompMetadataRow {
  uid: string;
  text?: string;
  original_width?: number;
  original_height?: number;
  clip_b32_similarity_score?: number;
  clip_l14_similarity_score?: number;
}

export interface DataCompParquetOptions {
  /** Columns to read besides uid (default all that the file has); leaving out `text` saves most of the I/O. */
  columns?: readonly DataCompColumn[];
}

// hyparquet decodes snappy itself; gzip and brotli come from node's zlib. ZSTD/LZ4 files need converting.
const compressors: Compressors = {
  GZIP: (input) => new Uint8Array(gunzipSync(input)),
  BROTLI: (input) => new Uint8Array(brotliDecompressSync(input)),
};

/**
 * The rows of DataComp metadata parquet files, file after file, one row group in memory at a time (memory is
 * bounded by the largest row group's requested columns, not by the file). Columns a file lacks are left out of
 * its rows; nulls are left out too. A file without a `uid` column, or a row without a uid, is an E_IO error
 * naming the file.
 */
export async function* readDataCompParquet(files: string[], opts: DataCompParquetOptions = {}): AsyncGenerator<DataCompMetadataRow> {
  for (const path of files) {
    const { file, metadata } = await openParquet(path);
    const present = new Set(parquetSchema(metadata).children.map((c) => c.element.name));
    if (!present.has('uid')) {
      throw new MimicError('E_IO', `${path} has no uid column, so it is not DataComp metadata`, {
        file: path,
        hint: `DataComp's metadata parquet files have the columns uid, text, original_width, original_height, clip_b32_similarity_score, clip_l14_similarity_score`,
      });
    }
    const columns = ['uid', ...(opts.columns ?? DATACOMP_COLUMNS).filter((c) => present.has(c))];
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const rowEnd = rowStart + Number(group.num_rows);
      let rows: Record<string, unknown>[];
      try {
        rows = await parquetReadObjects({ file, metadata, columns, rowStart, rowEnd, compressors });
      } catch (e) {
        throw parquetError(path, e);
      }
      for (let i = 0; i < rows.length; i++) yield toMetadataRow(rows[i], path, rowStart + i);
      rowStart = rowEnd;
    }
  }
}

async function openParquet(path: string): Promise<{ file: Awaited<ReturnType<typeof asyncBufferFromFile>>; metadata: FileMetaData }> {
  let file;
  try {
    file = await asyncBufferFromFile(path);
  } catch (e) {
    throw new MimicError('E_IO', `cannot read ${path}: ${errorMessage(e)}`, { file: path });
  }
  try {
    return { file, metadata: await parquetMetadataAsync(file) };
  } catch (e) {
    throw parquetError(path, e);
  }
}

function parquetError(path: string, e: unknown): MimicError {
  const message = errorMessage(e);
  const codec = /compression codec|ZSTD|LZ4/i.test(message);
  return new MimicError('E_IO', `${path} cannot be read as parquet: ${message}`, {
    file: path,
    hint: codec
      ? 'rewrite it with snappy, gzip or brotli compression (e.g. pandas: df.to_parquet(path, compression="snappy"))'
      : 'check that the file is a complete parquet file',
    cause: e,
  });
}

function toMetadataRow(r: Record<string, unknown>, path: string, row: number): DataCompMetadataRow {
  const uid = r.uid;
  if (typeof uid !== 'string') {
    throw new MimicError('E_IO', `${path}: row ${row} has no uid`, { file: path, hint: 'every DataComp metadata row has a 32-hex uid' });
  }
  const out: DataCompMetadataRow = { uid };
  if (typeof r.text === 'string') out.text = r.text;
  const w = toNumber(r.original_width);
  if (w !== undefined) out.original_width = w;
  const h = toNumber(r.original_height);
  if (h !== undefined) out.original_height = h;
  const b32 = toNumber(r.clip_b32_similarity_score);
  if (b32 !== undefined) out.clip_b32_similarity_score = b32;
  const l14 = toNumber(r.clip_l14_similarity_score);
  if (l14 !== undefined) out.clip_l14_similarity_score = l14;
  return out;
}

/** int64 columns come back as bigint; image sizes and scores fit a double exactly. */
function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}
