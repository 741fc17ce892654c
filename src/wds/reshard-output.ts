/**
 * The output side of `mimic reshard`, in DataComp's resharder layout: `{n:08d}.tar` shards of `shardSize` samples,
 * each with `{n:08d}_stats.json` (DataComp's `successes`, plus what resuming needs: the shard's bytes and sha256,
 * the run's plan hash, and the input positions where it starts and ends). A shard is written under a temporary
 * name and renamed (ShardWriter), then its stats file is written: a shard is complete exactly when its stats file
 * exists, belongs to this plan, and its size and sha256 match the tar.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';
import { ShardWriter, type SampleFiles } from './shard-writer.js';
import { writeFileAtomic } from '../atomic-file.js';

export const RESHARD_STATS_FORMAT = 'mimic-reshard-stats/1';

/** A place in the input: the next copy to write is copy `copy` of row `row` of source shard `source`. */
export interface InputPosition {
  source: number;
  row: number;
  copy: number;
}

export function comparePositions(a: InputPosition, b: InputPosition): number {
  return a.source - b.source || a.row - b.row || a.copy - b.copy;
}

export interface SourceSpan {
  /** The source shard's name (relative, as in the score files' `shard` column). */
  shard: string;
  first_row: number;
  last_row: number;
  /** Samples written from it into this output shard (copies counted). */
  samples: number;
}

export interface OutputShardStats {
  format: string;
  /** DataComp's field: samples in the shard. */
  successes: number;
  shard: string;
  bytes: number;
  sha256: string;
  plan: string;
  start: InputPosition;
  end: InputPosition;
  sources: SourceSpan[];
  /** Kept samples that could not be written, by reason, met while this shard was being filled. */
  skipped: Record<string, number>;
  /** Samples whose key was taken already in this shard and got a further `-N` suffix. */
  renamed: number;
  /** Samples keyed by their source key because they have no uid (--key-format uid). */
  keyed_by_source: number;
}

export function outputShardName(index: number, digits: number): string {
  return `${String(index).padStart(digits, '0')}.tar`;
}

export function statsName(index: number, digits: number): string {
  return `${String(index).padStart(digits, '0')}_stats.json`;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The stats of output shard `index` when the shard is complete and belongs to this plan; null otherwise. */
export async function verifyOutputShard(out: string, index: number, digits: number, plan: string): Promise<OutputShardStats | null> {
  let stats: OutputShardStats;
  try {
    stats = JSON.parse(await readFile(join(out, statsName(index, digits)), 'utf8')) as OutputShardStats;
  } catch {
    return null;
  }
  if (stats.format !== RESHARD_STATS_FORMAT || stats.plan !== plan || stats.shard !== outputShardName(index, digits)) return null;
  const tar = join(out, stats.shard);
  try {
    if ((await stat(tar)).size !== stats.bytes) return null;
    return (await sha256File(tar)) === stats.sha256 ? stats : null;
  } catch {
    return null;
  }
}

/** Remove output shards (and their stats and temporary files) from `index` on: what a resumed run rewrites. */
export async function removeOutputShardsFrom(out: string, index: number, digits: number): Promise<number> {
  const pattern = new RegExp(`^(\\d{${digits},})(\\.tar|_stats\\.json)(\\.tmp-.*)?$`);
  let removed = 0;
  for (const name of await readdir(out)) {
    const m = pattern.exec(name);
    if (!m || Number(m[1]) < index) continue;
    await rm(join(out, name), { force: true });
    removed++;
  }
  return removed;
}

interface OpenShard {
  index: number;
  writer: ShardWriter;
  start: InputPosition;
  keys: Set<string>;
  sources: SourceSpan[];
  skipped: Record<string, number>;
  renamed: number;
  keyedBySource: number;
}

/**
 * Writes samples into consecutive output shards. A full shard is closed only when the next sample arrives (or at
 * the end), so that its `end` is where the next shard starts: resuming from a shard's end redoes nothing twice.
 */
export class OutputShards {
  private current: OpenShard | null = null;
  private pendingSkips: Record<string, number> = {};
  /** Stats of the shards closed by this writer, in order. */
  readonly closed: OutputShardStats[] = [];

  constructor(
    private readonly out: string,
    private readonly shardSize: number,
    private readonly digits: number,
    private readonly plan: string,
    private nextIndex: number,
  ) {}

  /**
   * Add a sample at `at`, keyed `base` (made unique within the shard with `-N` when it is taken); returns the key
   * used. `files` holds the members in order, by extension.
   */
  async add(at: InputPosition, source: { name: string; row: number }, base: string, files: SampleFiles, keyedBySource: boolean): Promise<string> {
    if (this.current && this.current.writer.samples >= this.shardSize) await this.close(at);
    const cur = this.current ?? this.open(at);
    let key = base;
    for (let n = 1; cur.keys.has(key); n++) key = `${base}-${n}`;
    if (key !== base) cur.renamed++;
    if (keyedBySource) cur.keyedBySource++;
    await cur.writer.add(key, files);
    cur.keys.add(key);
    const last = cur.sources[cur.sources.length - 1];
    if (last && last.shard === source.name) {
      last.last_row = source.row;
      last.samples++;
    } else {
      cur.sources.push({ shard: source.name, first_row: source.row, last_row: source.row, samples: 1 });
    }
    return key;
  }

  /** A kept sample that cannot be written: counted in the shard being filled (or the next one). */
  skip(reason: string): void {
    const into = this.current?.skipped ?? this.pendingSkips;
    into[reason] = (into[reason] ?? 0) + 1;
  }

  /** Skips met when no shard was open and none followed (only possible when nothing at all is written). */
  get unattributedSkips(): Record<string, number> {
    return this.pendingSkips;
  }

  /** Close the last shard; `end` is the end of the input. */
  async finish(end: InputPosition): Promise<void> {
    if (this.current) await this.close(end);
  }

  /** Give up the shard being written (its temporary file is removed). */
  async abort(): Promise<void> {
    await this.current?.writer.abort();
    this.current = null;
  }

  private open(at: InputPosition): OpenShard {
    const index = this.nextIndex++;
    const writer = new ShardWriter(join(this.out, outputShardName(index, this.digits)));
    this.current = { index, writer, start: at, keys: new Set(), sources: [], skipped: this.pendingSkips, renamed: 0, keyedBySource: 0 };
    this.pendingSkips = {};
    return this.current;
  }

  private async close(end: InputPosition): Promise<void> {
    const cur = this.current!;
    this.current = null;
    await cur.writer.close();
    const name = outputShardName(cur.index, this.digits);
    const path = join(this.out, name);
    let bytes: number;
    let sha256: string;
    try {
      bytes = (await stat(path)).size;
      sha256 = await sha256File(path);
    } catch (e) {
      throw new MimicError('E_IO', `cannot read back ${path}: ${errorMessage(e)}`, { file: path, cause: e });
    }
    const stats: OutputShardStats = {
      format: RESHARD_STATS_FORMAT,
      successes: cur.writer.samples,
      shard: name,
      bytes,
      sha256,
      plan: this.plan,
      start: cur.start,
      end,
      sources: cur.sources,
      skipped: cur.skipped,
      renamed: cur.renamed,
      keyed_by_source: cur.keyedBySource,
    };
    // The stats file is the shard's completion mark: written after the tar is in place.
    await writeFileAtomic(join(this.out, statsName(cur.index, this.digits)), JSON.stringify(stats, null, 1) + '\n');
    this.closed.push(stats);
  }
}
