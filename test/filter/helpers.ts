/**
 * Test pools: score files written with the real writer from a seeded generator, plus the same values as JSON
 * for the numpy oracles (float32 values printed by JS parse back to the same float64 in Python).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScoreTableBuilder, writeScoreFile } from '../../src/scores/writer.js';
import { FLOAT_COLUMNS, META } from '../../src/scores/schema.js';
import { rng32 as rng } from '../../src/filter/random.js';

/** The filter's own seeded generator (xorshift32). */
export { rng };

export interface PoolSpec {
  seed: number;
  checkpoints: string[];
  /** Rows per file. */
  files: number[];
  batchSize?: number;
  /** Fraction of rows with a failed status. */
  failRate?: number;
  /** Fraction of rows without a uid. */
  noUidRate?: number;
  /** Values of these columns take only this many levels (ties). */
  tiedColumns?: Record<string, number>;
  /** Draw uids from this many distinct values (duplicates across rows). */
  distinctUids?: number;
  /** Leave ref_clip_sim null. */
  noRefClip?: boolean;
}

export interface TruthRow {
  unit: number;
  row: number;
  key: string;
  uid: string | null;
  shard: string;
  /** Per checkpoint. */
  status: string[];
  batch: (number | null)[];
  values: Record<string, (number | null)[]>;
}

export interface Truth {
  checkpoints: string[];
  units: string[];
  rows: TruthRow[];
}

const FAILS = ['decode_error', 'no_caption', 'bad_caption'];

/** Write a pool under `root/<checkpoint>/shard-XX.arrow` (+ `_manifests/`) and return what was written. */
export async function makePool(root: string, spec: PoolSpec): Promise<Truth> {
  const r = rng(spec.seed);
  const B = spec.batchSize ?? 8;
  const rows: TruthRow[] = [];
  const units = spec.files.map((_, u) => `shard-${String(u).padStart(2, '0')}.arrow`);
  // Status and identity are per sample; decoding failures are the same in every checkpoint, except a few
  // rows that fail in one checkpoint only (to exercise the mismatch count).
  for (let u = 0; u < spec.files.length; u++) {
    for (let i = 0; i < spec.files[u]; i++) {
      const failed = r() < (spec.failRate ?? 0.1);
      const status = spec.checkpoints.map(() => (failed ? FAILS[Math.floor(r() * FAILS.length)] : 'ok'));
      if (!failed && spec.checkpoints.length > 1 && r() < 0.01) status[spec.checkpoints.length - 1] = 'decode_error';
      const noUid = r() < (spec.noUidRate ?? 0.02);
      const hex = (rr: () => number) => Array.from({ length: 32 }, () => '0123456789abcdef'[Math.floor(rr() * 16)]).join('');
      const uid = noUid ? null : spec.distinctUids ? hex(rng(1 + Math.floor(r() * spec.distinctUids))) : hex(r);
      const values: Record<string, (number | null)[]> = {};
      for (const c of FLOAT_COLUMNS) {
        values[c] = spec.checkpoints.map((_, k) => {
          if (status[k] !== 'ok') return null;
          if (c === 'ref_clip_sim' && spec.noRefClip) return null;
          const levels = spec.tiedColumns?.[c];
          let v = levels ? Math.floor(r() * levels) / levels - 0.3 : (r() - 0.4) * 3 + (c === 'loss' ? 2 : 0);
          if (levels && v === 0 && r() < 0.5) v = -0;
          return Math.fround(v);
        });
      }
      rows.push({ unit: u, row: i, key: `${u}_${i}`, uid, shard: `pool/shard-${String(u).padStart(2, '0')}.tar`, status, batch: [], values });
    }
  }
  // Batches: consecutive ok rows of a checkpoint in groups of B (the last one smaller).
  for (let k = 0; k < spec.checkpoints.length; k++) {
    for (let u = 0; u < spec.files.length; u++) {
      let j = 0;
      for (const tr of rows.filter((x) => x.unit === u)) {
        tr.batch[k] = tr.status[k] === 'ok' ? Math.floor(j++ / B) : null;
      }
    }
  }
  for (let k = 0; k < spec.checkpoints.length; k++) {
    for (let u = 0; u < spec.files.length; u++) {
      const b = new ScoreTableBuilder();
      for (const tr of rows.filter((x) => x.unit === u)) {
        const row: Record<string, unknown> = {
          shard: tr.shard, row: tr.row, key: tr.key, uid: tr.uid, status: tr.status[k],
          error: tr.status[k] === 'ok' ? null : 'synthetic', batch: tr.batch[k], batch_size: B,
        };
        for (const c of FLOAT_COLUMNS) row[c] = tr.values[c][k];
        b.addRow(row as never);
      }
      await writeScoreFile(join(root, spec.checkpoints[k], units[u]), b.finish(), { [META.shard]: `pool/shard-${String(u).padStart(2, '0')}.tar` });
    }
  }
  mkdirSync(join(root, '_manifests'), { recursive: true });
  writeFileSync(join(root, '_manifests', 'run.json'), '{}');
  return { checkpoints: spec.checkpoints, units, rows };
}

/** Run a Python snippet under /usr/bin/python3 (numpy) with the truth in a JSON file; returns its JSON output. */
export function python<T>(script: string, truth: unknown, args: Record<string, unknown> = {}, dir = '/tmp'): T {
  const path = join(dir, `truth-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ truth, args }));
  const r = spawnSync('/usr/bin/python3', ['-c', PRELUDE + script, path], { encoding: 'utf8', maxBuffer: 1 << 28 });
  rmSync(path, { force: true });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Common oracle code: load the truth, build per-checkpoint float32 arrays and the pool's ok mask. */
const PRELUDE = `
import json, sys, math
import numpy as np
_d = json.load(open(sys.argv[1]))
T = _d['truth']; A = _d['args']
R = T['rows'] if T else []; C = len(T['checkpoints']) if T else 0
def col(name, k):
    return np.array([np.nan if r['values'][name][k] is None else r['values'][name][k] for r in R], dtype=np.float32)
ok = np.array([all(s == 'ok' for s in r['status']) for r in R])
keys = [r['key'] for r in R]
def out(x):
    print(json.dumps(x))
`;
