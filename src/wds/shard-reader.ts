/**
 * A shard as a stream of samples: source → (gunzip) → tar entries → webdataset grouping. Reading runs ahead of
 * the consumer by a bounded number of samples. A broken shard first yields every sample it could read (the one
 * being read when it broke marked `truncated`), then throws E_TAR or E_SOURCE naming the shard and the offset.
 */
import { DEFAULTS } from '../defaults.js';
import { errorMessage, isMimicError } from '../errors.js';
import { tarChunks } from './decompress.js';
import { SampleGrouper, classifyMember, type MemberClass } from './grouper.js';
import { openSource } from './source.js';
import { readTar, type TarSink } from './tar-reader.js';
import type { Sample, ShardInfo, ShardReadOptions, ShardReadStats } from './types.js';
import type { Readable } from 'node:stream';

export interface OpenedShard {
  info: ShardInfo;
  /** The shard's samples in order; iterate once. */
  samples: AsyncIterable<Sample>;
  /** Counts that fill in while the samples are read (skipped members, bytes...). */
  stats: ShardReadStats;
  /** Stop reading and release the source (only needed when `samples` is not iterated to its end). */
  close(): void;
}

export function emptyStats(): ShardReadStats {
  return {
    entries: 0,
    members: 0,
    skippedNonRegular: 0,
    skippedMeta: 0,
    skippedNoExtension: 0,
    repeatedKeys: 0,
    tarBytes: 0,
    sourceBytes: 0,
    gzip: false,
  };
}

/** Open a shard. An unreachable or missing shard throws E_SOURCE here or at the first iteration. */
export async function openShard(url: string, opts: ShardReadOptions = {}): Promise<OpenedShard> {
  const { info, stream } = await openSource(url, opts);
  const stats = emptyStats();
  const stop = new AbortController();
  const onAbort = () => stop.abort(opts.signal!.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const close = () => {
    opts.signal?.removeEventListener('abort', onAbort);
    if (stream !== process.stdin) stream.destroy();
    if (!stop.signal.aborted) stop.abort();
  };
  return { info, stats, samples: readSamples(url, stream, opts, stats, stop.signal, close), close };
}

async function* readSamples(
  url: string,
  stream: Readable,
  opts: ShardReadOptions,
  stats: ShardReadStats,
  signal: AbortSignal,
  close: () => void,
): AsyncGenerator<Sample> {
  const high = Math.max(1, opts.queueSamples ?? DEFAULTS.shards.queueSamples);
  const wantExt = opts.wantExtensions;
  const grouper = new SampleGrouper(url, stats);
  const queue: Sample[] = [];
  let wake: (() => void) | null = null;
  // The tar reader waits on this while the queue is full (set inside the sink, released by the consumer).
  const held: { next: (() => void) | null } = { next: null };
  let finished = false;
  let failure: unknown = null;
  let pending: MemberClass = { kind: 'nonregular' };
  /** Between an entry's header and its end: the shard may break inside it. */
  let inEntry = false;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  const sink: TarSink = {
    want(name, regular) {
      pending = classifyMember(name, regular);
      inEntry = true;
      return pending.kind === 'member' && (wantExt === undefined || wantExt(pending.ext));
    },
    entry(e, next) {
      inEntry = false;
      stats.entries++;
      const c = pending;
      if (c.kind === 'nonregular') stats.skippedNonRegular++;
      else if (c.kind === 'meta') stats.skippedMeta++;
      else if (c.kind === 'noext') stats.skippedNoExtension++;
      else {
        stats.members++;
        const done = grouper.add({ name: e.name, key: c.key, ext: c.ext, offset: e.offset, size: e.size, data: e.data });
        if (done) {
          queue.push(done);
          notify();
        }
      }
      if (queue.length >= high) held.next = next;
      else next();
    },
  };

  const pump = readTar(tarChunks(stream, stats, url), sink, stats, url, signal).then(
    () => {
      const last = grouper.finish();
      if (last) queue.push(last);
    },
    (e: unknown) => {
      failure = e;
      if (isMimicError(e)) {
        // The sample being built is known to be complete only if the shard broke inside a member of the next one.
        const nextStarted = inEntry && pending.kind === 'member' && pending.key !== grouper.currentKey;
        const last = grouper.finish(
          nextStarted
            ? undefined
            : {
                status: 'truncated',
                message: `the shard broke while this sample was being read, so it may lack members (${errorMessage(e)})`,
              },
        );
        if (last) queue.push(last);
      }
    },
  );
  void pump.finally(() => {
    finished = true;
    notify();
  });

  try {
    for (;;) {
      if (queue.length > 0) {
        const sample = queue.shift()!;
        if (held.next && queue.length < high) {
          const next = held.next;
          held.next = null;
          next();
        }
        yield sample;
        continue;
      }
      if (finished) {
        if (failure) throw failure;
        return;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    close();
  }
}
