/** The shapes that the WebDataset stage hands to the stages after it. */

/** What is known about a shard's bytes before reading them; size and etag let a resumed run see a changed input. */
export interface ShardInfo {
  url: string;
  /** Bytes of the shard as stored (compressed if it is gzipped), when the source says. */
  size?: number;
  /** HTTP ETag or S3 ETag, for remote shards. */
  etag?: string;
  mtimeMs?: number;
}

/** One member of a sample, whether or not its bytes were read. */
export interface SampleMember {
  /** The member's full path in the tar. */
  name: string;
  ext: string;
  /** Byte offset of the member's first header block (pax headers included, as Python's TarInfo.offset). */
  offset: number;
  size: number;
}

/** Why a sample cannot be used as it is; the sample is still yielded, so that no row goes missing. */
export type SampleProblemStatus =
  /** Two members of one sample have the same extension (only the first one's bytes are kept). */
  | 'duplicate_extension'
  /** A member path is absolute or contains `..`: kept for counting, never to be written out as is. */
  | 'bad_member_name'
  /** The shard broke while this sample was being read: it may lack members. */
  | 'truncated';

export interface SampleProblem {
  status: SampleProblemStatus;
  message: string;
}

export interface Sample {
  /** The shard's URL as listed. */
  shard: string;
  /** 0-based index of the sample in its shard, as Python's webdataset counts them. */
  row: number;
  key: string;
  /** Member bytes by lower-cased extension (only the extensions that were asked for). */
  files: Map<string, Buffer>;
  /** Byte offset of the sample's first member header in the (decompressed) tar stream. */
  offset: number;
  /** Every member of the sample in tar order, including those whose bytes were not read. */
  members: SampleMember[];
  problem?: SampleProblem;
}

export interface HttpOptions {
  /** Attempts after the first one, for a connection error, a 5xx/429 answer or a body cut short. */
  retries: number;
  /** The first wait between attempts; it doubles each time. */
  retryDelayMs: number;
  /** A connection idle for this long (waiting for headers or bytes) counts as dropped. */
  timeoutMs: number;
  maxRedirects: number;
}

/** S3 client settings; anything left out comes from the usual AWS environment and config files. */
export interface S3Options {
  region?: string;
  /** e.g. a MinIO or s3rver URL; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL are used when unset. */
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface ShardReadOptions {
  /** Allow `pipe:CMD` shards (they run a shell command). */
  allowPipe?: boolean;
  signal?: AbortSignal;
  /** Read the bytes of only these extensions (the others are still listed in `members` and group as usual). */
  wantExtensions?: (ext: string) => boolean;
  http?: Partial<HttpOptions>;
  s3?: S3Options;
  /** Samples read ahead of the consumer before reading pauses; bounds memory. */
  queueSamples?: number;
  /** Bytes per read from a local file. */
  readChunkBytes?: number;
}

/** Members that webdataset skips, counted so that inspect can show them. */
export interface ShardReadStats {
  /** Tar entries seen, of every kind. */
  entries: number;
  /** Regular members that belong to samples. */
  members: number;
  /** Directories, links and other non-regular entries. */
  skippedNonRegular: number;
  /** Top-level `__*__` metadata entries. */
  skippedMeta: number;
  /** Regular members whose basename has no `.` (webdataset cannot key them). */
  skippedNoExtension: number;
  /** Samples whose key already appeared earlier in the shard (each starts a new sample). */
  repeatedKeys: number;
  /** Bytes of the tar stream (after decompression) read so far. */
  tarBytes: number;
  /** Bytes read from the source (as stored). */
  sourceBytes: number;
  /** Whether the shard was gzipped. */
  gzip: boolean;
}
