/**
 * What a launch of `mimic score` will do: the bundles, the shard list and its assignment to workers, and the
 * run's identity. The first launch fixes the worker count in OUT/_manifests/run.json; later launches (other
 * workers, resubmitted tasks) must agree with it, or they stop and say what differs.
 */
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { MimicError } from '../errors.js';
import { loadBundle, checkPair, type Bundle, type PairCheck } from '../model/index.js';
import { GRAD_GRAPH_FORMAT } from '../mimic/index.js';
import { expandShardSpecs, shardNames } from '../wds/index.js';
import { SCORE_FORMAT } from '../scores/schema.js';
import {
  RUN_FORMAT,
  createRunRecordOnce,
  diffIdentity,
  readRunRecord,
  type RunIdentity,
  type RunRecord,
} from '../scores/manifest.js';
import { VERSION } from '../version.js';
import { DEFAULTS } from '../defaults.js';
import type { ResolvedScoreOptions } from './options.js';
import { readUidFile, type UidSet } from './uid-set.js';

export interface Checkpoint {
  /** The output subfolder: OUT/<name>/. */
  name: string;
  bundle: Bundle;
  lineage: PairCheck;
}

export interface PlannedShard {
  /** Position in the run's shard list. */
  index: number;
  url: string;
  /** Relative name: the output path and the `shard` column. */
  name: string;
  worker: number;
}

export interface RunPlan {
  record: RunRecord;
  checkpoints: Checkpoint[];
  reference: Bundle;
  uids: UidSet | null;
  /** Every shard of the run, in order. */
  shards: PlannedShard[];
  /** The shards this worker owns. */
  mine: PlannedShard[];
}

/** Shard i belongs to worker i mod n: stable, needs no coordination, and spreads consecutive shards. */
export function assignWorker(index: number, numWorkers: number): number {
  return index % numWorkers;
}

export function scoreFilePath(out: string, checkpoint: string, shardName: string): string {
  return join(out, checkpoint, `${shardName}.arrow`);
}

/** `--proxy NAME=DIR` or `--proxy DIR` (named after the folder). */
export function parseProxySpec(spec: string): { name: string; dir: string } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$/.exec(spec);
  const name = m ? m[1]! : basename(resolve(spec));
  const dir = m ? m[2]! : spec;
  if (name.startsWith('_') || name === '.' || name === '..' || !/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new MimicError('E_USAGE', `"${name}" cannot name a checkpoint's output folder`, {
      hint: 'name it explicitly: --proxy NAME=DIR, with letters, digits, ".", "_" or "-" (not starting with "_")',
    });
  }
  return { name, dir };
}

export function argsHashOf(identity: RunIdentity): string {
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
}

export async function planRun(o: ResolvedScoreOptions): Promise<RunPlan> {
  const specs = o.proxies.map(parseProxySpec);
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) {
      throw new MimicError('E_USAGE', `two proxies are named "${s.name}"`, { hint: 'name them: --proxy NAME=DIR' });
    }
    names.add(s.name);
  }
  const reference = await loadBundle(o.reference);
  const checkpoints: Checkpoint[] = [];
  for (const s of specs) {
    const bundle = await loadBundle(s.dir);
    checkpoints.push({ name: s.name, bundle, lineage: await checkPair(bundle, reference) });
  }
  const urls = await expandShardSpecs(o.shards, { allowPipe: o.allowPipe });
  const relNames = shardNames(urls);
  const uids = o.uidsFile ? await readUidFile(o.uidsFile) : null;

  const identity: RunIdentity = {
    format: RUN_FORMAT,
    scoreFormat: SCORE_FORMAT,
    gradGraphFormat: GRAD_GRAPH_FORMAT,
    checkpoints: checkpoints.map((c) => ({ name: c.name, hash: c.bundle.hash })),
    reference: { hash: reference.hash },
    batchSize: o.batchSize,
    fillPolicy: DEFAULTS.score.fillPolicy,
    imageKeys: o.imageKeys,
    captionKey: o.captionKey,
    metadataKey: o.metadataKey,
    referenceClipScore: o.referenceClipScore,
    uids: uids?.hash ?? null,
    shardNames: relNames,
    ...(o.precision === 'fp16' ? { precision: 'fp16' as const } : {}),
    ...(o.sourceSize ? { resizeInGraph: `${o.sourceSize.width}x${o.sourceSize.height}` } : {}),
  };
  const wanted: RunRecord = {
    ...identity,
    numWorkers: o.numWorkers ?? 1,
    argsHash: argsHashOf(identity),
    toolVersion: VERSION,
    sources: {
      shards: urls,
      checkpoints: Object.fromEntries(checkpoints.map((c) => [c.name, c.bundle.dir])),
      reference: reference.dir,
      uidsFile: o.uidsFile ? resolve(o.uidsFile) : null,
    },
  };
  let existing = await readRunRecord(o.out);
  if (!existing) {
    // Check before the record is created: a first launch with a bad worker index would otherwise fix the
    // worker count at 1 for good, and the corrected launch would be refused.
    checkWorkerIndex(o, wanted.numWorkers, o.numWorkers === undefined
      ? `this is the first launch in ${o.out}, and without --num-workers it records a run of 1 worker; pass --num-workers (the same to every worker)`
      : `pass a worker index below --num-workers`);
    existing = await createRunRecordOnce(o.out, wanted);
  }
  const record = checkRecord(existing, wanted, identity, o);
  checkWorkerIndex(o, record.numWorkers, `the worker count was fixed at ${record.numWorkers} when ${o.out} was first launched`);
  const shards = urls.map((url, index) => ({ index, url, name: relNames[index]!, worker: assignWorker(index, record.numWorkers) }));
  return { record, checkpoints, reference, uids, shards, mine: shards.filter((s) => s.worker === o.workerIndex) };
}

function checkWorkerIndex(o: ResolvedScoreOptions, numWorkers: number, hint: string): void {
  if (o.workerIndex >= numWorkers) {
    throw new MimicError('E_USAGE', `worker index ${o.workerIndex} is not below the run's worker count ${numWorkers}`, { hint });
  }
}

function checkRecord(existing: RunRecord, wanted: RunRecord, identity: RunIdentity, o: ResolvedScoreOptions): RunRecord {
  if (existing.format !== RUN_FORMAT) {
    throw new MimicError('E_OUTPUT', `${o.out} holds a run of another format (${String(existing.format)})`, {
      hint: 'use a new --out folder',
    });
  }
  const diffs = diffIdentity(existing, identity);
  if (diffs.length > 0) {
    throw new MimicError('E_OUTPUT', `${o.out} holds a run with other arguments:\n  ${diffs.join('\n  ')}`, {
      file: join(o.out, '_manifests', 'run.json'),
      hint: 'rerun with the same arguments to resume it, or choose a new --out folder',
    });
  }
  if (o.numWorkers !== undefined && o.numWorkers !== existing.numWorkers) {
    throw new MimicError('E_USAGE', `the run in ${o.out} was launched with ${existing.numWorkers} workers, not ${o.numWorkers}`, {
      hint: 'the worker count is fixed at the first launch (it decides which worker owns which shard); leave --num-workers out or pass the same number',
    });
  }
  return existing.argsHash === wanted.argsHash ? existing : { ...existing, argsHash: wanted.argsHash };
}
