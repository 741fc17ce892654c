/**
 * The pool: every score file of one or more checkpoints, joined by (shard, row). A *unit* is one relative shard
 * path; its file must exist in every checkpoint with the same rows. Reading a unit yields, for the rows of the
 * shard, whether each is ok (ok in every checkpoint), and each requested score column combined across
 * checkpoints (after optional per-batch normalisation) as float32 with NaN where missing.
 */
import { dirname, join } from 'node:path';
import { MimicError } from '../errors.js';
import { log } from '../log.js';
import { ScoreFileReader, type ReadArena } from '../scores/reader.js';
import { listScoreRuns, missingScoreFiles, type CheckpointRun } from '../scores/runs.js';
import { FLOAT_COLUMNS, META } from '../scores/schema.js';
import { utf8At, type Column, type Float32Column, type Int32Column, type Utf8Column } from '../scores/columns.js';
import { allBits, andBits, andNotBits, countBits, orBits, popcount, unpackBits, wordsFor } from './bits.js';
import { addVotes, combine, groupByBatch, normalizeBatches, type Aggregate, type Normalize, type BatchGroups } from './aggregate.js';

export interface PoolOptions {
  /** Run folders: `OUT` of `mimic score` (all its checkpoints) or `OUT/<checkpoint>`. */
  runs: readonly string[];
  aggregate?: Aggregate;
  /** Temperature of the softmax in `vote` and `--normalize softmax`. */
  tau?: number;
  normalize?: Normalize;
  /**
   * Accept a run whose shards are not all scored yet. Percentiles and top-k then describe only the shards that
   * are there, so the default is an error that says which shards are missing.
   */
  allowIncomplete?: boolean;
}

/** Columns that per-batch normalisation and voting act on: those that depend on the rest of the batch. */
export function isBatchRelative(column: string): boolean {
  return column === 'loss' || /^(grad_norm|mimic_proj|mimic_cos)_/.test(column);
}

/** Columns `--aggregate vote` votes on (the mimic scores); the others are averaged. */
export function isVoted(column: string): boolean {
  return /^mimic_(proj|cos)_/.test(column);
}

export type IdentityColumn = 'shard' | 'row' | 'key' | 'uid';

export interface UnitRequest {
  /** Canonical float score columns wanted (a subset of FLOAT_COLUMNS). */
  scores: readonly string[];
  identity?: readonly IdentityColumn[];
  /** Decode the status of rows that are not ok (for the summary's per-status counts). */
  statuses?: boolean;
  /**
   * Skip the status column and treat every row as ok: valid only for score columns without per-batch work,
   * where the schema's rule (scores are null unless the status is ok) already makes failed rows NaN. The
   * filter uses it in its histogram passes and checks the rule in its final pass.
   */
  trustNulls?: boolean;
}

export interface UnitData {
  unit: number;
  path: string;
  n: number;
  /** 1 where the row is ok in every checkpoint (made from okBits on first use). */
  readonly ok: Uint8Array;
  /** The same as bits (bits.ts). */
  okBits: Int32Array;
  okCount: number;
  values: Record<string, Float32Array>;
  identity: Partial<Record<IdentityColumn, Column>>;
  /** Status → rows, for rows that are not ok (first checkpoint whose status is not ok decides). */
  statusCounts?: Map<string, number>;
  /** Rows that are ok in some checkpoints and not in others. */
  statusMismatch?: number;
  /** Footer metadata of the first checkpoint's file. */
  metadata: Record<string, string>;
}

const OK0 = 0x6f; // 'o'
const OK1 = 0x6b; // 'k'

/** 1 where the status is exactly "ok". */
export function okMask(status: Utf8Column, into?: Uint8Array): Uint8Array {
  const n = status.length;
  const bits = new Int32Array(wordsFor(n));
  statusOkBits(status, bits);
  const out = into ?? new Uint8Array(n);
  out.set(unpackBits(bits, n));
  return out;
}

/** Bits of the rows whose status is exactly "ok" (bits.ts); returns how many there are. */
export function statusOkBits(status: Utf8Column, bits: Int32Array): number {
  const n = status.length;
  const off = status.offsets;
  const b = status.bytes;
  if (off[0] === 0 && off[n] === 2 * n && (b.byteOffset & 1) === 0 && regularPairs(off, n)) {
    // Common case: every status is two bytes long; compare "ok" as one uint16.
    return okPairBits(new Uint16Array(b.buffer, b.byteOffset, n), bits);
  }
  return okOffsetBits(off, b, bits);
}

/** Any status lengths: a row is ok when its status is two bytes, "o" then "k". */
function okOffsetBits(off: Int32Array, b: Uint8Array, out: Int32Array): number {
  const n = off.length - 1;
  let c = 0;
  for (let base = 0; base < n; base += 32) {
    let bits = 0;
    for (let k = Math.min(n, base + 32) - 1; k >= base; k--) {
      const s = off[k];
      bits = (bits << 1) | (off[k + 1] - s === 2 && b[s] === OK0 && b[s + 1] === OK1 ? 1 : 0);
    }
    out[base >>> 5] = bits;
    c += popcount(bits);
  }
  return c;
}

function regularPairs(off: Int32Array, n: number): boolean {
  for (let i = 1; i <= n; i++) if (off[i] !== 2 * i) return false;
  return true;
}

const OK_PAIR = OK0 | (OK1 << 8); // little-endian "ok"

/** Rows from the highest down, one shift and one or each (no branch), 32 to a word. */
function okPairBits(pairs: Uint16Array, out: Int32Array): number {
  const n = pairs.length;
  const full = n >>> 5;
  let c = 0;
  for (let w = 0; w < full; w++) {
    const base = w << 5;
    let bits = 0;
    for (let k = base + 31; k >= base; k--) bits = (bits << 1) | (pairs[k] === OK_PAIR ? 1 : 0);
    out[w] = bits;
    c += popcount(bits);
  }
  if (n & 31) {
    let bits = 0;
    for (let k = n - 1; k >= full << 5; k--) bits = (bits << 1) | (pairs[k] === OK_PAIR ? 1 : 0);
    out[full] = bits;
    c += popcount(bits);
  }
  return c;
}

/** Status → rows for the rows that are not ok; the first checkpoint in which a row is not ok names it. */
function countStatuses(n: number, okBits: Int32Array, okPer: Int32Array[], status: Utf8Column[]): Map<string, number> {
  const counts = new Map<string, number>();
  const C = okPer.length;
  // Failed rows mostly share a few statuses: decode a status only when its bytes differ from the last one's.
  let last: Uint8Array | null = null;
  let lastName = '';
  for (let w = 0; w < okBits.length; w++) {
    let x = ~okBits[w];
    if (w === okBits.length - 1 && (n & 31)) x &= (1 << (n & 31)) - 1;
    while (x !== 0) {
      const low = x & -x;
      x ^= low;
      const i = (w << 5) + 31 - Math.clz32(low);
      let c = 0;
      while (c < C - 1 && (okPer[c][w] & low) !== 0) c++;
      const col = status[c];
      let name: string;
      if (col.validity !== null && (col.validity[i >> 3] & (1 << (i & 7))) === 0) name = '(null)';
      else {
        const bytes = col.bytes.subarray(col.offsets[i], col.offsets[i + 1]);
        if (last === null || !sameBytes(bytes, last)) {
          last = bytes;
          lastName = utf8At(col, i) ?? '(null)';
        }
        name = lastName;
      }
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  return counts;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

/** What reading a unit needs to know about the pool: plain data, so that worker threads can have it too. */
export interface PoolSpec {
  checkpoints: { name: string; dir: string }[];
  aggregate: Aggregate;
  tau: number;
  normalize: Normalize;
}

export class Pool {
  readonly checkpoints: CheckpointRun[];
  readonly units: string[];
  readonly aggregate: Aggregate;
  readonly tau: number;
  readonly normalize: Normalize;
  /** Shards of the runs' records that have no score file yet (accepted with allowIncomplete), per checkpoint. */
  readonly missingShards: Record<string, number>;

  private constructor(checkpoints: CheckpointRun[], units: string[], opts: PoolOptions, missingShards: Record<string, number> = {}) {
    this.checkpoints = checkpoints;
    this.missingShards = missingShards;
    this.units = units;
    this.aggregate = opts.aggregate ?? 'mean';
    this.tau = opts.tau ?? 1;
    this.normalize = opts.normalize ?? 'none';
  }

  /** List the runs and check that every checkpoint has the same shards. */
  static open(opts: PoolOptions): Pool {
    if (opts.runs.length === 0) throw new MimicError('E_USAGE', 'no score run given', { hint: 'pass the --out folder of `mimic score`' });
    if (opts.tau !== undefined && !(opts.tau > 0 && Number.isFinite(opts.tau))) {
      throw new MimicError('E_USAGE', `--tau must be a positive number, got ${opts.tau}`);
    }
    if (opts.aggregate === 'vote' && opts.normalize && opts.normalize !== 'none') {
      throw new MimicError('E_USAGE', '--normalize cannot be combined with --aggregate vote',
        { hint: 'a vote is already relative to its batch; drop --normalize' });
    }
    const checkpoints: CheckpointRun[] = [];
    for (const r of opts.runs) checkpoints.push(...listScoreRuns(r).checkpoints);
    const seen = new Map<string, string>();
    for (const c of checkpoints) {
      const other = seen.get(c.dir);
      if (other !== undefined) throw new MimicError('E_USAGE', `checkpoint folder ${c.dir} is given twice`);
      seen.set(c.dir, c.name);
    }
    const missingShards: Record<string, number> = {};
    for (const c of checkpoints) {
      const gap = missingScoreFiles(c);
      if (!gap || gap.missing.length === 0) continue;
      missingShards[c.name] = gap.missing.length;
      const what = `${gap.missing.length} of the run's ${gap.expected} shards have no score file in ${c.dir} yet (e.g. ${gap.missing[0]})`;
      if (!opts.allowIncomplete) {
        throw new MimicError('E_SCORES', `the run is not complete: ${what}`, {
          file: c.dir,
          hint: `finish it (rerun \`mimic score\`, it resumes; \`mimic status ${dirname(c.dir)}\` lists what is left), or pass --allow-incomplete to use the shards that are there (pool-wide percentiles then describe those only)`,
        });
      }
      log().warn({ checkpoint: c.name, missing: gap.missing.length, expected: gap.expected }, `incomplete run: ${what}`);
    }
    const units = checkpoints[0].files;
    const unitSet = new Set(units);
    for (const c of checkpoints.slice(1)) {
      const have = new Set(c.files);
      const missing = units.filter((u) => !have.has(u));
      const extra = c.files.filter((u) => !unitSet.has(u));
      if (missing.length || extra.length) {
        const [who, what, example] = missing.length
          ? [c, 'lacks', missing[0]]
          : [checkpoints[0], 'lacks', extra[0]];
        throw new MimicError('E_SCORES',
          `checkpoints ${checkpoints[0].name} and ${c.name} cover different shards: ${who.name} ${what} ${missing.length + extra.length} of them, e.g. ${example}`,
          { file: join(who.dir, example), hint: 'finish `mimic score` for every checkpoint (it resumes), or filter the checkpoints separately' });
      }
    }
    return new Pool(checkpoints, units, opts, missingShards);
  }

  get spec(): PoolSpec {
    return {
      checkpoints: this.checkpoints.map((c) => ({ name: c.name, dir: c.dir })),
      aggregate: this.aggregate,
      tau: this.tau,
      normalize: this.normalize,
    };
  }

  /** The file of unit u in checkpoint c. */
  filePath(c: number, u: number): string {
    return join(this.checkpoints[c].dir, this.units[u]);
  }

  /** Read unit u: ok mask, combined score columns and the identity columns asked for. */
  readUnit(u: number, req: UnitRequest): UnitData {
    return readPoolUnit(this.spec, u, this.units[u], req);
  }
}

/** Read unit u (file `unitPath` of every checkpoint): ok mask, combined score columns, identity columns. */
export function readPoolUnit(spec: PoolSpec, u: number, unitPath: string, req: UnitRequest, arena?: ReadArena): UnitData {
  const C = spec.checkpoints.length;
  const filePath = (c: number) => join(spec.checkpoints[c].dir, unitPath);
  const ckName = (c: number) => spec.checkpoints[c].name;
  const batchNeeded = req.scores.some((s) => isBatchRelative(s)) && (spec.normalize !== 'none' || spec.aggregate === 'vote');
  const readers: ScoreFileReader[] = [];
  try {
    for (let c = 0; c < C; c++) readers.push(ScoreFileReader.open(filePath(c)));
    const n = readers[0].length;
    for (let c = 1; c < C; c++) {
      if (readers[c].length !== n) {
        throw new MimicError('E_SCORES',
          `shard ${unitPath} has ${n} rows in checkpoint ${ckName(0)} but ${readers[c].length} in ${ckName(c)}`,
          { file: filePath(c), hint: 'the checkpoints were scored on different versions of the shard; rescore it' });
      }
      const s0 = readers[0].metadata[META.shard];
      const sc = readers[c].metadata[META.shard];
      if (s0 !== undefined && sc !== undefined && s0 !== sc) {
        throw new MimicError('E_SCORES', `score files ${unitPath} of checkpoints ${ckName(0)} and ${ckName(c)} are of different shards (${s0} vs ${sc})`,
          { file: filePath(c) });
      }
    }
    // Per checkpoint: status, batch (when needed) and the score columns.
    const perCk: Record<string, Column>[] = [];
    const okPer: Int32Array[] = [];
    const words = wordsFor(n);
    const trust = req.trustNulls === true && !batchNeeded && !req.statuses;
    let okCount = n;
    for (let c = 0; c < C; c++) {
      const names = [...(trust ? [] : ['status']), ...(batchNeeded ? ['batch'] : []), ...req.scores];
      if (c === 0 && req.identity) for (const id of req.identity) if (!names.includes(id)) names.push(id);
      const cols = readers[c].read(names, arena);
      perCk.push(cols);
      if (trust) okPer.push(allBits(n));
      else {
        const bits = new Int32Array(words);
        okCount = statusOkBits(cols.status as Utf8Column, bits);
        okPer.push(bits);
      }
    }
    let okBits = okPer[0];
    let mismatch = 0;
    if (C > 1) {
      okBits = okPer[0].slice();
      const any = okPer[0].slice();
      for (let c = 1; c < C; c++) {
        andBits(okBits, okPer[c]);
        orBits(any, okPer[c]);
      }
      andNotBits(any, okBits);
      mismatch = countBits(any);
      okCount = countBits(okBits);
    }
    // The byte mask, for the loops that want one, made once on first use.
    let okBytes: Uint8Array | null = null;
    const okOf = () => (okBytes ??= unpackBits(okBits, n));

    let statusCounts: Map<string, number> | undefined;
    if (req.statuses && okCount < n) statusCounts = countStatuses(n, okBits, okPer, perCk.map((cols) => cols.status as Utf8Column));

    const groups: BatchGroups[] = [];
    if (batchNeeded) {
      for (let c = 0; c < C; c++) groups.push(groupByBatch((perCk[c].batch as Int32Column).values, unpackBits(okPer[c], n)));
    }

    const values: Record<string, Float32Array> = {};
    for (const name of req.scores) {
      if (!FLOAT_COLUMNS.includes(name)) throw new Error(`not a score column: ${name}`);
      const raw = perCk.map((cols) => (cols[name] as Float32Column).values);
      if (spec.aggregate === 'vote' && isVoted(name)) {
        const votes = new Float64Array(n);
        for (let c = 0; c < C; c++) addVotes(raw[c], groups[c], spec.tau, votes);
        const out = new Float32Array(n);
        const ok = okOf();
        for (let i = 0; i < n; i++) out[i] = ok[i] ? votes[i] / C : NaN;
        values[name] = out;
        continue;
      }
      let inputs = raw;
      if (spec.normalize !== 'none' && isBatchRelative(name)) {
        inputs = raw.map((v, c) => {
          const out = new Float32Array(n).fill(NaN);
          normalizeBatches(v, groups[c], spec.normalize as 'rank' | 'softmax', spec.tau, out);
          return out;
        });
      }
      const how = spec.aggregate === 'vote' ? 'mean' : spec.aggregate;
      if (C === 1 && inputs === raw) {
        // Zero-copy: nulls are already NaN, and every consumer masks rows that are not ok with `ok`.
        values[name] = raw[0];
      } else {
        const out = inputs === raw ? new Float32Array(n) : inputs[0];
        combine(how, inputs, okOf(), out);
        values[name] = out;
      }
    }
    const identity: Partial<Record<IdentityColumn, Column>> = {};
    for (const id of req.identity ?? []) identity[id] = perCk[0][id];
    const metadata = readers[0].metadata;
    return {
      unit: u, path: unitPath, n, okBits, okCount, values, identity, statusCounts, statusMismatch: mismatch, metadata,
      get ok() {
        return okOf();
      },
    };
  } finally {
    for (const r of readers) r.close();
  }
}
