/**
 * Streaming tar reading with tar-stream: entries come out one at a time, in order, each with the byte offset of
 * its header, and the next entry is read only when the consumer says so (memory stays bounded whatever the
 * shard's size). A broken tar ends with an E_TAR error that names the byte offset and the member involved.
 *
 * Stricter than Python's tarfile, on purpose: tarfile silently stops at a garbage header or a cut inside a
 * header after the first member, and accepts a tar that ends without its end-of-archive blocks; those are all
 * signs of a damaged shard, so here they are errors (after every complete member has been handed over).
 */
import tarStream from 'tar-stream';
import { MimicError, errorMessage, isMimicError } from '../errors.js';
import { log } from '../log.js';
import { isZlibError } from './decompress.js';

export interface TarEntry {
  name: string;
  /** A regular file (what webdataset reads); everything else is skipped by the grouper. */
  regular: boolean;
  /** Byte offset of the entry's header in the tar stream. */
  offset: number;
  size: number;
  /** The entry's bytes, when `want` asked for them. */
  data?: Buffer;
}

export interface TarSink {
  /** Called at each entry's header: whether to keep its bytes (skipped bytes are never copied). */
  want(name: string, regular: boolean): boolean;
  /** Called once an entry is complete; reading continues when `next` is called. */
  entry(entry: TarEntry, next: () => void): void;
}

export interface TarReadState {
  tarBytes: number;
  sourceBytes: number;
  gzip: boolean;
}

const BLOCK = 512;
/** Above this, an entry's bytes are gathered in chunks rather than into one buffer sized from its header. */
const PREALLOCATE_LIMIT = 64 << 20;

/** Read every entry of a tar stream into `sink`; resolves at a clean end, rejects with E_TAR / E_SOURCE. */
export async function readTar(
  chunks: AsyncIterable<Buffer>,
  sink: TarSink,
  state: TarReadState,
  url: string,
  signal?: AbortSignal,
): Promise<void> {
  const extract = tarStream.extract({ allowUnknownFormat: true } as never);
  let entries = 0;
  /** End of the last complete entry's data (its padding included): where the next header starts. */
  let lastEnd = 0;
  let lastName: string | undefined;
  let warnedGap = false;
  let current: { name: string; offset: number; size: number; got: number } | null = null;
  let failure: Error | null = null;
  const waiters = new Set<() => void>();
  const wakeAll = () => {
    for (const w of waiters) w();
    waiters.clear();
  };
  extract.on('error', (e: Error) => {
    failure ??= e;
    wakeAll();
  });
  let backpressured = false;
  let finished = false;
  extract.on('drain', () => {
    backpressured = false;
    wakeAll();
  });
  extract.on('finish', () => {
    finished = true;
    wakeAll();
  });
  extract.on('close', wakeAll);
  const onAbort = () => extract.destroy(signal!.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });

  extract.on('entry', (header, stream, next) => {
    entries++;
    const regular = header.type === 'file' || header.type === 'contiguous-file';
    const size = header.size ?? 0;
    // Like Python's TarInfo.offset, a member starts at its first header block, pax or GNU long-name headers
    // included; those are the only blocks tar-stream consumes between two members' data, so that is where the
    // previous member ended. (Zero blocks are skipped too; only a concatenated tar has them mid-stream.)
    const extended = header.pax != null || Buffer.byteLength(header.name) > 100;
    const entry = { name: header.name, offset: extended ? lastEnd : stream.offset, size, got: 0 };
    if (!extended && stream.offset > lastEnd && !warnedGap) {
      // Only zero blocks are skipped silently between members: an end-of-archive marker mid-stream, as in
      // `cat a.tar b.tar`. Python's tarfile stops there; reading on loses nothing, but the difference is said.
      warnedGap = true;
      log().warn(
        { shard: url, offset: lastEnd, next: stream.offset },
        'end-of-archive blocks in the middle of the shard (concatenated tars?): reading on, where Python webdataset stops',
      );
    }
    current = entry;
    const want = sink.want(header.name, regular);
    let data: Buffer | undefined;
    let parts: Buffer[] | undefined;
    if (want) {
      if (size <= PREALLOCATE_LIMIT) data = Buffer.allocUnsafe(size);
      else parts = [];
    }
    stream.on('data', (c: unknown) => {
      const chunk = c as Buffer;
      if (data) chunk.copy(data, entry.got);
      else if (parts) parts.push(Buffer.from(chunk));
      entry.got += chunk.length;
    });
    stream.on('error', () => {}); // reported through the extractor's own error
    stream.on('end', () => {
      current = null;
      lastEnd = stream.offset + BLOCK + Math.ceil(size / BLOCK) * BLOCK;
      lastName = entry.name;
      if (parts) data = Buffer.concat(parts);
      sink.entry({ name: entry.name, regular, offset: entry.offset, size, data }, () => next());
    });
  });

  const settled = () => failure !== null || extract.destroyed;
  const wait = () => new Promise<void>((resolve) => waiters.add(resolve));

  try {
    try {
      for await (const chunk of chunks) {
        if (settled()) break;
        state.tarBytes += chunk.length;
        if (!extract.write(chunk)) {
          backpressured = true;
          while (backpressured && !settled()) await wait();
        }
      }
    } catch (e) {
      throw streamError(e, url, state, current, lastEnd);
    }
    if (!settled()) {
      extract.end(null as never);
      while (!settled() && !finished) await wait();
    }
    if (failure) throw tarError(failure, url, state, current, lastEnd, entries);
    signal?.throwIfAborted();
    if (state.tarBytes === 0) {
      throw new MimicError('E_TAR', `${url} is empty (0 bytes)`, { file: url, hint: 'the shard was not written, or was cut at its start' });
    }
    if (entries > 0 && state.tarBytes <= lastEnd) {
      throw new MimicError(
        'E_TAR',
        `${url} ends at byte ${state.tarBytes}, right after member "${lastName}", without the end-of-archive blocks: it was probably cut short`,
        { file: url, hint: 'rewrite or re-download the shard; every sample before the cut was read' },
      );
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!extract.destroyed) extract.destroy();
  }
}

type Current = { name: string; offset: number; size: number; got: number } | null;

function where(state: TarReadState): string {
  return state.gzip ? `tar byte ${state.tarBytes} (compressed byte ${state.sourceBytes})` : `byte ${state.tarBytes}`;
}

/** An error from the bytes' source or from gunzip. */
function streamError(e: unknown, url: string, state: TarReadState, current: Current, lastEnd: number): Error {
  if ((e as Error)?.name === 'AbortError') return e as Error;
  if (isMimicError(e)) return e;
  const inMember = current ? ` inside member "${current.name}" (header at byte ${current.offset})` : ` after byte ${lastEnd}`;
  if (isZlibError(e)) {
    return new MimicError('E_TAR', `${url}: the gzip data is corrupt or cut short at ${where(state)}${inMember}: ${errorMessage(e)}`, {
      file: url,
      hint: 'rewrite or re-download the shard; every sample before this point was read',
      cause: e,
    });
  }
  return new MimicError('E_SOURCE', `${url}: reading failed at ${where(state)}${inMember}: ${errorMessage(e)}`, {
    file: url,
    hint: 'check the disk or the network, then rerun',
    cause: e,
  });
}

/** An error from the tar parser. */
function tarError(e: Error, url: string, state: TarReadState, current: Current, lastEnd: number, entries: number): Error {
  if (e.name === 'AbortError' || isMimicError(e)) return e;
  const msg = e.message;
  if (/unexpected end of data/i.test(msg)) {
    const detail = current
      ? `inside the data of member "${current.name}" (header at byte ${current.offset}, ${current.got} of ${current.size} bytes present)`
      : `inside a tar header (the last complete member ends at byte ${lastEnd})`;
    return new MimicError('E_TAR', `${url} is truncated at ${where(state)}, ${detail}`, {
      file: url,
      hint: 'rewrite or re-download the shard; every sample before the cut was read',
    });
  }
  if (/invalid tar header|unknown format/i.test(msg)) {
    if (entries === 0 && lastEnd === 0) {
      return new MimicError('E_TAR', `${url} is not a tar file (no valid tar header at byte 0)`, {
        file: url,
        hint: 'check that the shard is a .tar or .tar.gz file',
      });
    }
    return new MimicError('E_TAR', `${url} has an invalid tar header at or after byte ${lastEnd} (garbage or a damaged block)`, {
      file: url,
      hint: 'rewrite or re-download the shard; every sample before this point was read',
    });
  }
  return new MimicError('E_TAR', `${url}: unreadable tar data after byte ${lastEnd}: ${msg}`, {
    file: url,
    hint: 'rewrite or re-download the shard; every sample before this point was read',
  });
}
