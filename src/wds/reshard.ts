/**
 * `mimic reshard`: write the kept samples of a pool as new shards. The source shards are streamed once, in order;
 * each sample's id (json uid, key, or shard and row) is looked up in the kept set, and a sample listed k times is
 * written k times, keyed `{uid}-{j}` as DataComp's resharder keys them. Members are copied byte for byte, in their
 * order. Output shards are complete one by one (see reshard-output.ts), so a killed run resumes at the first
 * incomplete shard: complete ones are verified (size and sha256) and kept, and reading restarts at the input
 * position recorded in the last one's stats. Memory: the kept set (16 bytes an id), the samples read ahead
 * (bounded by the shard reader) and one output shard's key set.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage, isMimicError } from '../errors.js';
import { log } from '../log.js';
import { VERSION } from '../version.js';
import { jsonUid, sampleJson } from './sample-fields.js';
import { openShard } from './shard-reader.js';
import { shardKind, shardNames } from './shard-spec.js';
import type { SampleFiles } from './shard-writer.js';
import type { Sample } from './types.js';
import { writeFileAtomic } from '../atomic-file.js';
import {
  OutputShards,
  comparePositions,
  removeOutputShardsFrom,
  verifyOutputShard,
  type InputPosition,
  type OutputShardStats,
} from './reshard-output.js';
import { keyWords, readSelection, rowWords, uidWords, type Selection, type SelectionKind } from './reshard-select.js';

export const RESHARD_FORMAT = 'mimic-reshard/1';
export const RESHARD_MANIFEST = 'reshard.json';

export type ReshardKeyFormat = 'uid' | 'source';

export interface ReshardOptions {
  /** The kept ids: a DataComp .npy, a uid or key text file, or the filter's Arrow/Parquet table of rows. */
  selection: string;
  /** The source shards, in the order they were scored (expanded URLs or paths). */
  sources: string[];
  /** Their relative names as in the score files' `shard` column (default: shardNames(sources)). */
  sourceNames?: string[];
  /** Output folder: new, empty, or a previous reshard with the same arguments (which is resumed). */
  out: string;
  /** Samples per output shard. */
  shardSize?: number;
  /** Digits of the zero-padded output shard numbers. */
  digits?: number;
  /** `uid`: keys `{uid}-{j}` (DataComp); `source`: the source key, `{key}-{j}` for the j-th extra copy. */
  keyFormat?: ReshardKeyFormat;
  /** What a text selection's lines are (default: uids when every line is a 32-hex uid, else keys). */
  idKind?: 'uid' | 'key';
  /** The json member that carries the uid. */
  metadataKey?: string;
  /** Write what can be read of a broken source shard and go on (it is listed in the summary) instead of stopping. */
  allowBroken?: boolean;
  allowPipe?: boolean;
  onProgress?: (p: ReshardProgress) => void;
  signal?: AbortSignal;
}

export interface ReshardProgress {
  sourcesDone: number;
  sourcesTotal: number;
  samplesRead: number;
  written: number;
  shards: number;
}

export interface ReshardSummary {
  out: string;
  selection: { file: string; kind: SelectionKind; format: string; ids: number; distinct: number };
  sources: number;
  /** Output shards, and how many of them were found complete from an earlier launch. */
  shards: number;
  resumedShards: number;
  /** Samples written (copies counted), over every output shard. */
  written: number;
  bytes: number;
  /** Kept samples that could not be written, by reason (`bad_member_name`, `duplicate_extension`, `truncated`...). */
  skipped: Record<string, number>;
  /** Listed ids that matched no sample: exact when each id names at most one sample (uids and keys of one pool). */
  notFound: number;
  renamed: number;
  keyedBySource: number;
  brokenSources: { shard: string; error: string }[];
  /** This launch only. */
  samplesRead: number;
  wallS: number;
  samplesPerS: number;
}

interface ReshardIdentity {
  format: string;
  selection: { kind: SelectionKind; hash: string; ids: number };
  sources: string[];
  shardSize: number;
  digits: number;
  keyFormat: ReshardKeyFormat;
  metadataKey: string;
}

interface ReshardManifest extends ReshardIdentity {
  plan: string;
  toolVersion: string;
  selectionFile: string;
  sourceUrls: string[];
  complete: boolean;
  summary?: ReshardSummary;
}

const positiveInt = (v: number, what: string): number => {
  if (!Number.isInteger(v) || v < 1) throw new MimicError('E_USAGE', `${what} must be a positive whole number, got ${v}`);
  return v;
};

export async function reshard(options: ReshardOptions): Promise<ReshardSummary> {
  const started = performance.now();
  const d = DEFAULTS.reshard;
  const shardSize = positiveInt(options.shardSize ?? d.shardSize, 'the shard size');
  const digits = positiveInt(options.digits ?? d.digits, 'the number of digits');
  const keyFormat = options.keyFormat ?? d.keyFormat;
  const metadataKey = options.metadataKey ?? DEFAULTS.wds.metadataKey;
  if (keyFormat !== 'uid' && keyFormat !== 'source') throw new MimicError('E_USAGE', `the key format must be uid or source, got "${String(keyFormat)}"`);
  if (options.sources.length === 0) throw new MimicError('E_USAGE', 'no source shards given', { hint: 'pass --shards SPEC or --run OUT' });
  const names = options.sourceNames ?? shardNames(options.sources);
  if (names.length !== options.sources.length) throw new MimicError('E_USAGE', 'sourceNames must name every source shard');
  const out = resolve(options.out);
  for (const s of options.sources) {
    if (shardKind(s) === 'file' && (resolve(s) + sep).startsWith(out + sep)) {
      throw new MimicError('E_USAGE', `the source shard ${s} lies inside the output folder ${out}`, {
        hint: 'write the new shards to a folder of their own',
      });
    }
  }

  const selection = await readSelection(options.selection, { textKind: options.idKind, shardNames: names });
  const identity: ReshardIdentity = {
    format: RESHARD_FORMAT,
    selection: { kind: selection.kind, hash: selection.ids.hash, ids: selection.ids.size },
    sources: names,
    shardSize,
    digits,
    keyFormat,
    metadataKey,
  };
  const plan = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
  const manifest = await openManifest(out, identity, plan, options);
  log().info({ out, selection: selection.kind, ids: selection.ids.size, distinct: selection.ids.distinct, sources: names.length }, 'reshard plan');

  // Complete shards of an earlier launch, each starting where the one before ended (the first starts at the
  // first kept sample, wherever that is).
  const done: OutputShardStats[] = [];
  for (;;) {
    const stats = await verifyOutputShard(out, done.length, digits, plan);
    if (!stats) break;
    if (done.length > 0 && comparePositions(stats.start, done[done.length - 1]!.end) !== 0) break;
    done.push(stats);
  }
  const end: InputPosition = { source: names.length, row: 0, copy: 0 };
  if (manifest.complete && manifest.summary && manifest.summary.shards === done.length) {
    log().info({ out, shards: done.length }, 'reshard already complete; every shard verified');
    return { ...manifest.summary, resumedShards: done.length, samplesRead: 0, wallS: (performance.now() - started) / 1000, samplesPerS: 0 };
  }
  await removeOutputShardsFrom(out, done.length, digits);
  await rm(join(out, 'sizes.json'), { force: true });
  const start = done.length > 0 ? done[done.length - 1]!.end : { source: 0, row: 0, copy: 0 };
  if (done.length > 0) log().info({ complete: done.length, from: start }, 'resuming after the complete output shards');

  const output = new OutputShards(out, shardSize, digits, plan, done.length);
  const broken: { shard: string; error: string }[] = [];
  const progress: ReshardProgress = { sourcesDone: start.source, sourcesTotal: names.length, samplesRead: 0, written: 0, shards: done.length };
  const words = new Uint32Array(4);
  try {
    for (let s = start.source; s < names.length; s++) {
      const url = options.sources[s]!;
      const first = s === start.source ? start : null;
      try {
        const shard = await openShard(url, { allowPipe: options.allowPipe, signal: options.signal });
        for await (const sample of shard.samples) {
          progress.samplesRead++;
          if (first && sample.row < first.row) continue;
          const id = sampleId(sample, selection, s, metadataKey, words);
          const count = id === null ? 0 : selection.ids.count(words);
          for (let j = first && sample.row === first.row ? first.copy : 0; j < count; j++) {
            await writeCopy(output, sample, { source: s, row: sample.row, copy: j }, names[s]!, keyFormat, metadataKey, selection.kind === 'uid' ? id : null);
            progress.written++;
          }
          if (progress.samplesRead % 256 === 0) options.onProgress?.({ ...progress, shards: done.length + output.closed.length });
        }
      } catch (e) {
        if (!isMimicError(e) || (e.code !== 'E_TAR' && e.code !== 'E_SOURCE')) throw e;
        if (!options.allowBroken) {
          throw new MimicError(e.code, `${errorMessage(e)}\n(${done.length + output.closed.length} output shard(s) before it are complete; the one being written is discarded)`, {
            file: url,
            hint: 'rerun to resume once the shard can be read, or pass --allow-broken to write what it holds and go on',
            cause: e,
          });
        }
        broken.push({ shard: names[s]!, error: errorMessage(e) });
        log().warn({ shard: url, err: errorMessage(e) }, 'source shard broken: its readable samples were written (--allow-broken)');
      }
      progress.sourcesDone = s + 1;
      options.onProgress?.({ ...progress, shards: done.length + output.closed.length });
    }
    await output.finish(end);
  } catch (e) {
    await output.abort();
    throw e;
  }

  const all = [...done, ...output.closed];
  const skipped: Record<string, number> = { ...output.unattributedSkips };
  for (const st of all) for (const [k, v] of Object.entries(st.skipped)) skipped[k] = (skipped[k] ?? 0) + v;
  const written = all.reduce((a, st) => a + st.successes, 0);
  const skippedCopies = Object.values(skipped).reduce((a, v) => a + v, 0);
  const wallS = (performance.now() - started) / 1000;
  const summary: ReshardSummary = {
    out,
    selection: { file: resolve(options.selection), kind: selection.kind, format: selection.format, ids: selection.ids.size, distinct: selection.ids.distinct },
    sources: names.length,
    shards: all.length,
    resumedShards: done.length,
    written,
    bytes: all.reduce((a, st) => a + st.bytes, 0),
    skipped,
    notFound: Math.max(0, selection.ids.size - written - skippedCopies),
    renamed: all.reduce((a, st) => a + st.renamed, 0),
    keyedBySource: all.reduce((a, st) => a + st.keyed_by_source, 0),
    brokenSources: broken,
    samplesRead: progress.samplesRead,
    wallS,
    samplesPerS: progress.samplesRead / Math.max(wallS, 1e-9),
  };
  // OpenCLIP's shard table, then the manifest marked complete.
  await writeFileAtomic(join(out, 'sizes.json'), JSON.stringify(Object.fromEntries(all.map((st) => [st.shard, st.successes])), null, 1) + '\n');
  await writeManifest(out, { ...manifest, complete: broken.length === 0, summary });
  return summary;
}

/** The sample's id as 4 words in `w`; for uid selections the uid text is returned (it names the output). */
function sampleId(sample: Sample, selection: Selection, source: number, metadataKey: string, w: Uint32Array): string | null {
  switch (selection.kind) {
    case 'row':
      rowWords(source, sample.row, w);
      return '';
    case 'key':
      keyWords(sample.key, w);
      return '';
    case 'uid': {
      const json = sampleJson(sample, metadataKey);
      const uid = json.ok ? jsonUid(json.json) : null;
      return uid !== null && uidWords(uid, w) ? uid : null;
    }
  }
}

const UID_KEY = /^[0-9a-fA-F]{1,32}$/;

async function writeCopy(
  output: OutputShards,
  sample: Sample,
  at: InputPosition,
  sourceName: string,
  keyFormat: ReshardKeyFormat,
  metadataKey: string,
  matchedUid: string | null,
): Promise<void> {
  if (sample.problem) {
    // A sample with an unsafe member name, a repeated extension or cut short by a broken shard cannot be copied whole.
    output.skip(sample.problem.status);
    return;
  }
  let base: string;
  let bySource = false;
  if (keyFormat === 'uid') {
    let uid = matchedUid;
    if (uid === null) {
      const json = sampleJson(sample, metadataKey);
      uid = json.ok ? jsonUid(json.json) : null;
    }
    if (uid !== null && UID_KEY.test(uid)) {
      base = `${uid}-${at.copy}`;
    } else {
      base = `${sample.key}-${at.copy}`;
      bySource = true;
    }
  } else {
    base = at.copy === 0 ? sample.key : `${sample.key}-${at.copy}`;
  }
  const files: SampleFiles = {};
  for (const m of sample.members) {
    const bytes = sample.files.get(m.ext);
    const basename = m.name.slice(m.name.lastIndexOf('/') + 1);
    // The extension as written in the tar (its case kept); webdataset lower-cases it when reading.
    const ext = basename.slice(basename.indexOf('.') + 1);
    if (!bytes) {
      output.skip('missing_member');
      return;
    }
    files[ext] = bytes;
  }
  try {
    await output.add(at, { name: sourceName, row: sample.row }, base, files, bySource);
  } catch (e) {
    if (!isMimicError(e) || e.code !== 'E_SAMPLE') throw e;
    // The writer checks names before it writes anything, so the shard is intact.
    log().warn({ shard: sourceName, row: sample.row, key: sample.key, err: errorMessage(e) }, 'kept sample not written');
    output.skip('bad_member_name');
  }
}

async function openManifest(out: string, identity: ReshardIdentity, plan: string, o: ReshardOptions): Promise<ReshardManifest> {
  const path = join(out, RESHARD_MANIFEST);
  let existing: ReshardManifest | null = null;
  try {
    existing = JSON.parse(await readFile(path, 'utf8')) as ReshardManifest;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MimicError('E_OUTPUT', `cannot read ${path}: ${errorMessage(e)}`, { file: path, hint: 'remove it (and the folder) to start over' });
    }
  }
  if (existing) {
    const diffs = diffIdentity(existing, identity);
    if (diffs.length > 0) {
      throw new MimicError('E_OUTPUT', `${out} holds a reshard with other arguments:\n  ${diffs.join('\n  ')}`, {
        file: path,
        hint: 'rerun with the same arguments to resume it, or choose a new --out folder',
      });
    }
    return existing;
  }
  let entries: string[] = [];
  try {
    entries = await readdir(out);
  } catch {
    await mkdir(out, { recursive: true });
  }
  if (entries.length > 0) {
    throw new MimicError('E_OUTPUT', `${out} is not empty and holds no reshard (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''})`, {
      file: out,
      hint: 'write the new shards to a new or empty folder',
    });
  }
  const manifest: ReshardManifest = {
    ...identity,
    plan,
    toolVersion: VERSION,
    selectionFile: resolve(o.selection),
    sourceUrls: o.sources,
    complete: false,
  };
  await writeManifest(out, manifest);
  return manifest;
}

async function writeManifest(out: string, m: ReshardManifest): Promise<void> {
  await writeFileAtomic(join(out, RESHARD_MANIFEST), JSON.stringify(m, null, 1) + '\n');
}

function diffIdentity(a: ReshardIdentity, b: ReshardIdentity): string[] {
  const diffs: string[] = [];
  if (a.format !== b.format) diffs.push(`format: ${a.format} here, ${b.format} now`);
  if (a.selection?.kind !== b.selection.kind || a.selection?.hash !== b.selection.hash) {
    diffs.push(`selection: ${a.selection?.ids} ${a.selection?.kind} ids (sha256 ${a.selection?.hash?.slice(0, 12)}…) here, ${b.selection.ids} ${b.selection.kind} ids (${b.selection.hash.slice(0, 12)}…) now`);
  }
  if (JSON.stringify(a.sources) !== JSON.stringify(b.sources)) diffs.push(`source shards: ${a.sources?.length} here, ${b.sources.length} now (or other names)`);
  for (const k of ['shardSize', 'digits', 'keyFormat', 'metadataKey'] as const) {
    if (a[k] !== b[k]) diffs.push(`${k}: ${String(a[k])} here, ${String(b[k])} now`);
  }
  return diffs;
}
