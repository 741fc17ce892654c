/**
 * Open a shard's bytes, whatever holds them: a local file, http(s), S3, a shell command's output or stdin.
 * The bytes come out as stored (a gzipped shard stays gzipped here; the reader detects that from the bytes).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage } from '../errors.js';
import { localPath, pipeRefused, shardKind } from './shard-spec.js';
import { openHttp, statHttp } from './source-http.js';
import { openPipe } from './source-pipe.js';
import { openS3, statS3 } from './source-s3.js';
import type { ShardInfo, ShardReadOptions } from './types.js';

export interface OpenedSource {
  info: ShardInfo;
  stream: Readable;
}

/** Open a shard; an unreachable or missing one throws E_SOURCE (a `pipe:` one without allowPipe, E_USAGE). */
export async function openSource(url: string, opts: ShardReadOptions = {}): Promise<OpenedSource> {
  opts.signal?.throwIfAborted();
  switch (shardKind(url)) {
    case 'http':
      return openHttp(url, opts);
    case 's3':
      return openS3(url, opts);
    case 'pipe':
      if (!opts.allowPipe) throw pipeRefused(url);
      return openPipe(url, opts);
    case 'stdin':
      return { info: { url }, stream: process.stdin };
    case 'file':
      return openFile(url, opts);
  }
}

async function openFile(url: string, opts: ShardReadOptions): Promise<OpenedSource> {
  const path = localPath(url);
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new MimicError('E_SOURCE', missing ? `no such shard: ${path}` : `cannot read ${path}: ${errorMessage(e)}`, {
      file: url,
      hint: missing ? 'check the path and the shard list' : 'check the file permissions',
      cause: e,
    });
  }
  if (!st.isFile()) {
    throw new MimicError('E_SOURCE', `${path} is not a file`, {
      file: url,
      hint: st.isDirectory() ? 'name the shards inside the folder, e.g. "folder/*.tar"' : undefined,
    });
  }
  const stream = createReadStream(path, {
    highWaterMark: opts.readChunkBytes ?? DEFAULTS.shards.readChunkBytes,
    signal: opts.signal,
  });
  return { info: { url, size: st.size, mtimeMs: st.mtimeMs }, stream };
}

/**
 * What is known about a shard's bytes without reading them (size, etag): enough for a resumed run to see that a
 * finished shard's input is unchanged. Remote shards cost one request; `pipe:` and stdin have no such facts.
 */
export async function statShard(url: string, opts: ShardReadOptions = {}): Promise<ShardInfo> {
  const kind = shardKind(url);
  if (kind === 'pipe' || kind === 'stdin') return { url };
  if (kind === 'file') {
    const path = localPath(url);
    try {
      const st = await stat(path);
      return { url, size: st.size, mtimeMs: st.mtimeMs };
    } catch (e) {
      throw new MimicError('E_SOURCE', `cannot read ${path}: ${errorMessage(e)}`, { file: url, cause: e });
    }
  }
  if (kind === 'http') return statHttp(url, opts);
  if (kind === 's3') return statS3(url, opts);
  const { info, stream } = await openSource(url, opts);
  stream.destroy();
  return info;
}
