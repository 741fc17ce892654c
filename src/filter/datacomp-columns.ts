/**
 * DataComp's columns for the pool rows: CLIP scores from DataComp's metadata parquet (joined by uid), and the
 * basic / English / text-based filter verdicts on each caption (from the scored shards' txt/json, or from the
 * parquet's `text` and original sizes when no shards are given, as DataComp's own baselines read them).
 *
 * The uid join is a sort-merge join in bounded memory: parquet rows and pool rows are each external-sorted by
 * uid, merged, and the matches sorted back into pool order (unit, row) — three external sorts, each within
 * `sortMemoryBytes`, with temporary files proportional to the pool. A uid listed twice in the metadata takes
 * its first row (parquet file order) and the duplicates are counted.
 */
import { resolve } from 'node:path';
import { MimicError } from '../errors.js';
import { DEFAULTS } from '../defaults.js';
import { utf8BytesAt, type Uint32Column, type Utf8Column } from '../scores/columns.js';
import { META } from '../scores/schema.js';
import { ScoreFileReader } from '../scores/reader.js';
import { expandShardSpecs, shardNames } from '../wds/shard-spec.js';
import { DataCompFilters } from '../text/datacomp.js';
import { readDataCompParquet, readShardCaptions, type DataCompColumn } from './metadata.js';
import type { ColumnKind } from './catalog.js';
import { ExternalSorter } from './extsort.js';
import { parseUid, parseUidBytes } from './npy.js';
import type { Pool } from './pool.js';
import { SideStore } from './side-store.js';

export interface DataCompColumnsOptions {
  /** DataComp metadata parquet files (uid, text, original_width/height, clip_*_similarity_score). */
  metadata?: readonly string[];
  /** The scored shards (specs as for `mimic score`), for their captions and json. */
  shards?: readonly string[];
  /** Compute the caption filters (basic, english, english_prob, and text_match with a synset list). */
  filters?: boolean;
  /** ImageNet-21k synset list for text_match (see src/text/synsets.ts). */
  synsetsFile?: string;
  allowPipe?: boolean;
  tmpDir?: string;
  sortMemoryBytes?: number;
  onProgress?: (what: string, done: number, total: number) => void;
}

/** Values per row, in this order, in the join's records. */
const VALUE_COLUMNS = ['clip_b32', 'clip_l14', 'basic', 'english', 'english_prob', 'text_match'] as const;
type ValueColumn = (typeof VALUE_COLUMNS)[number];
const V = VALUE_COLUMNS.length;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}
function floatOf(bits: number): number {
  u32[0] = bits;
  return f32[0];
}

/** Caption filter verdicts as column values (1/0, NaN where a value cannot be known). */
function captionValues(filters: DataCompFilters, withText: boolean, caption: string | null, json: Record<string, unknown> | null, out: Record<ValueColumn, number>): void {
  out.basic = filters.basic(caption, json).keep ? 1 : 0;
  if (caption === null) {
    out.english = NaN;
    out.english_prob = NaN;
    if (withText) out.text_match = 0;
    return;
  }
  const e = filters.english(caption);
  out.english = e.english ? 1 : 0;
  out.english_prob = e.prob;
  if (withText) out.text_match = filters.textMatch(caption) ? 1 : 0;
}

/** Build the DataComp columns for every unit of the pool into a SideStore (the caller closes it). */
export async function buildDataCompColumns(pool: Pool, opts: DataCompColumnsOptions): Promise<SideStore> {
  const metaFiles = opts.metadata ?? [];
  const shardSpecs = opts.shards ?? [];
  if (!metaFiles.length && !shardSpecs.length) throw new MimicError('E_USAGE', 'DataComp columns need --metadata or --shards');
  const wantFilters = opts.filters ?? false;
  const withText = wantFilters && opts.synsetsFile !== undefined;
  const columns = new Map<string, ColumnKind>();
  if (metaFiles.length) {
    columns.set('clip_b32', 'number');
    columns.set('clip_l14', 'number');
  }
  if (wantFilters) {
    columns.set('basic', 'boolean');
    columns.set('english', 'boolean');
    columns.set('english_prob', 'number');
    if (withText) columns.set('text_match', 'boolean');
  }
  const filters = wantFilters ? await DataCompFilters.load({ synsetsFile: opts.synsetsFile }) : null;
  const captionsFromParquet = filters !== null && shardSpecs.length === 0;
  const memory = opts.sortMemoryBytes ?? DEFAULTS.filter.sortMemoryBytes;
  const store = new SideStore(columns, { tmpDir: opts.tmpDir });
  const facts: Record<string, unknown> = { columns: [...columns.keys()] };
  const sorters: ExternalSorter[] = [];
  try {
    // Metadata: parquet rows by uid, pool rows by uid, merge → matches by (unit, row).
    let matches: Generator<Uint32Array> | null = null;
    if (metaFiles.length) {
      const byUid = new ExternalSorter({ stride: 5 + V, keyWords: 5, memoryBytes: memory, tmpDir: opts.tmpDir });
      const poolByUid = new ExternalSorter({ stride: 6, keyWords: 6, memoryBytes: memory, tmpDir: opts.tmpDir });
      const joined = new ExternalSorter({ stride: 2 + V, keyWords: 2, memoryBytes: memory, tmpDir: opts.tmpDir });
      sorters.push(byUid, poolByUid, joined);
      const rec = new Uint32Array(5 + V);
      const vals = {} as Record<ValueColumn, number>;
      let seq = 0;
      let badUid = 0;
      const wanted: DataCompColumn[] = ['clip_b32_similarity_score', 'clip_l14_similarity_score'];
      if (captionsFromParquet) wanted.push('text', 'original_width', 'original_height');
      for await (const r of readDataCompParquet([...metaFiles], { columns: wanted })) {
        if (!parseUid(r.uid, rec, 0)) {
          badUid++;
          continue;
        }
        rec[4] = seq++;
        for (const c of VALUE_COLUMNS) vals[c] = NaN;
        vals.clip_b32 = r.clip_b32_similarity_score ?? NaN;
        vals.clip_l14 = r.clip_l14_similarity_score ?? NaN;
        if (captionsFromParquet) {
          const json = { original_width: r.original_width, original_height: r.original_height };
          captionValues(filters!, withText, r.text ?? null, json, vals);
        }
        VALUE_COLUMNS.forEach((c, k) => (rec[5 + k] = bitsOf(vals[c])));
        byUid.push(rec);
        if (seq % 100_000 === 0) opts.onProgress?.('metadata rows', seq, 0);
      }
      const prec = new Uint32Array(6);
      let poolWithUid = 0;
      for (let u = 0; u < pool.units.length; u++) {
        const r = ScoreFileReader.open(pool.filePath(0, u));
        try {
          const { uid } = r.read(['uid']) as { uid: Utf8Column };
          for (let i = 0; i < r.length; i++) {
            if (uid.validity && !(uid.validity[i >> 3] & (1 << (i & 7)))) continue;
            if (!parseUidBytes(utf8BytesAt(uid, i), prec, 0)) continue;
            prec[4] = u;
            prec[5] = i;
            poolByUid.push(prec);
            poolWithUid++;
          }
        } finally {
          r.close();
        }
      }
      let matched = 0;
      let duplicates = 0;
      const a = new Cursor(byUid.sorted(), byUid.stride);
      const b = new Cursor(poolByUid.sorted(), poolByUid.stride);
      const out = new Uint32Array(2 + V);
      let lastUid: number[] | null = null;
      while (a.ok && b.ok) {
        const c = cmpUid(a.rec, a.at, b.rec, b.at);
        if (c < 0) {
          if (lastUid && sameUid(a.rec, a.at, lastUid)) duplicates++;
          lastUid = [a.rec[a.at], a.rec[a.at + 1], a.rec[a.at + 2], a.rec[a.at + 3]];
          a.next();
        } else if (c > 0) b.next();
        else {
          // Every pool row with this uid gets the first metadata row of the uid.
          out[0] = b.rec[b.at + 4];
          out[1] = b.rec[b.at + 5];
          for (let k = 0; k < V; k++) out[2 + k] = a.rec[a.at + 5 + k];
          joined.push(out);
          matched++;
          b.next();
        }
      }
      while (a.ok) {
        if (lastUid && sameUid(a.rec, a.at, lastUid)) duplicates++;
        lastUid = [a.rec[a.at], a.rec[a.at + 1], a.rec[a.at + 2], a.rec[a.at + 3]];
        a.next();
      }
      facts.metadata = {
        files: metaFiles.length,
        rows: seq + badUid,
        rows_with_invalid_uid: badUid,
        duplicate_uids: duplicates,
        pool_rows_with_uid: poolWithUid,
        pool_rows_matched: matched,
        pool_rows_unmatched: poolWithUid - matched,
        captions_from: captionsFromParquet ? 'parquet text' : undefined,
      };
      matches = joined.sorted();
    }

    // Shards: match each unit to its shard URL.
    let unitUrl: string[] | null = null;
    if (shardSpecs.length) unitUrl = await matchShards(pool, [...shardSpecs], opts.allowPipe ?? false);
    const captionStatus = new Map<string, number>();
    let shardRows = 0;

    const m = matches ? new Cursor(matches, 2 + V) : null;
    for (let u = 0; u < pool.units.length; u++) {
      const r = ScoreFileReader.open(pool.filePath(0, u));
      const n = r.length;
      const rowCol = unitUrl ? (r.read(['row']).row as Uint32Column) : null;
      r.close();
      const values: Record<string, Float32Array> = {};
      for (const c of columns.keys()) values[c] = new Float32Array(n).fill(NaN);
      while (m && m.ok && m.rec[m.at] === u) {
        const i = m.rec[m.at + 1];
        VALUE_COLUMNS.forEach((c, k) => {
          if (values[c]) values[c][i] = floatOf(m.rec[m.at + 2 + k]);
        });
        m.next();
      }
      if (unitUrl && filters) {
        const indexOfRow = new Map<number, number>();
        for (let i = 0; i < n; i++) indexOfRow.set(rowCol!.values[i], i);
        const vals = {} as Record<ValueColumn, number>;
        let seen = 0;
        for await (const rec of readShardCaptions(unitUrl[u], { allowPipe: opts.allowPipe })) {
          const i = indexOfRow.get(rec.row);
          if (i === undefined) {
            throw new MimicError('E_SCORES', `shard ${unitUrl[u]} has a sample (row ${rec.row}, key ${rec.key}) that its score file ${pool.units[u]} lacks`,
              { file: unitUrl[u], hint: 'the shard changed since it was scored; rescore it' });
          }
          seen++;
          captionStatus.set(rec.status, (captionStatus.get(rec.status) ?? 0) + 1);
          captionValues(filters, withText, rec.caption, rec.json, vals);
          for (const c of ['basic', 'english', 'english_prob', 'text_match'] as const) if (values[c]) values[c][i] = vals[c];
        }
        if (seen !== n) {
          throw new MimicError('E_SCORES', `shard ${unitUrl[u]} has ${seen} samples but its score file ${pool.units[u]} has ${n} rows`,
            { file: unitUrl[u], hint: 'the shard changed since it was scored; rescore it' });
        }
        shardRows += seen;
      }
      store.put(u, n, values);
      opts.onProgress?.('units', u + 1, pool.units.length);
    }
    if (unitUrl) facts.shards = { shards: pool.units.length, rows: shardRows, caption_status: Object.fromEntries(captionStatus) };
    if (filters) {
      facts.filters = {
        lid_model: filters.lidModelPath,
        captions_from: captionsFromParquet ? 'metadata parquet text' : 'shards',
        ...(filters.synsets ? { synsets: filters.synsets.file, synsets_sha256: filters.synsets.sha256, synsets_are_datacomp_in21k: filters.synsets.isDataCompIn21k } : {}),
      };
    }
    store.setSummary(facts);
    return store;
  } catch (e) {
    store.close();
    throw e;
  } finally {
    for (const s of sorters) s.close();
  }
}

function cmpUid(x: Uint32Array, a: number, y: Uint32Array, b: number): number {
  for (let k = 0; k < 4; k++) {
    if (x[a + k] !== y[b + k]) return x[a + k] < y[b + k] ? -1 : 1;
  }
  return 0;
}

function sameUid(x: Uint32Array, a: number, u: number[]): boolean {
  return x[a] === u[0] && x[a + 1] === u[1] && x[a + 2] === u[2] && x[a + 3] === u[3];
}

/** Record-at-a-time view of a sorter's chunk stream. */
class Cursor {
  rec: Uint32Array = new Uint32Array(0);
  at = 0;
  ok = true;

  constructor(private readonly chunks: Generator<Uint32Array>, private readonly stride: number) {
    this.load();
  }

  private load(): void {
    for (;;) {
      const r = this.chunks.next();
      if (r.done) {
        this.ok = false;
        return;
      }
      if (r.value.length > 0) {
        this.rec = r.value;
        this.at = 0;
        return;
      }
    }
  }

  next(): void {
    this.at += this.stride;
    if (this.at >= this.rec.length) this.load();
  }
}

/**
 * The shard URL of each unit: the score file's recorded shard (META.shard) when it is one of the given URLs,
 * else the shard whose name relative to the shards' common folder is the unit's path without `.arrow`
 * (with or without its .tar/.tar.gz/.tgz extension).
 */
async function matchShards(pool: Pool, specs: string[], allowPipe: boolean): Promise<string[]> {
  const urls = await expandShardSpecs(specs, { allowPipe });
  const byUrl = new Map<string, string>();
  for (const url of urls) {
    byUrl.set(url, url);
    if (!/^[a-z0-9+]+:/i.test(url)) byUrl.set(resolve(url), url);
  }
  const names = shardNames(urls);
  const byName = new Map<string, string>();
  names.forEach((n, k) => {
    byName.set(n, urls[k]);
    byName.set(stripTarExt(n), urls[k]);
  });
  const out: string[] = [];
  for (let u = 0; u < pool.units.length; u++) {
    const r = ScoreFileReader.open(pool.filePath(0, u));
    const recorded = r.metadata[META.shard];
    r.close();
    const rel = pool.units[u].replace(/\.arrow$/, '');
    const url = (recorded !== undefined ? byUrl.get(recorded) ?? byUrl.get(resolve(recorded)) : undefined)
      ?? byName.get(rel) ?? byName.get(stripTarExt(rel));
    if (url === undefined) {
      throw new MimicError('E_USAGE', `--shards has no shard for the score file ${pool.units[u]}${recorded ? ` (scored from ${recorded})` : ''}`,
        { hint: 'pass the same shard list as to `mimic score`' });
    }
    out.push(url);
  }
  return out;
}

function stripTarExt(name: string): string {
  return name.replace(/\.(tar\.gz|tgz|tar)$/i, '');
}
