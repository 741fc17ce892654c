/**
 * Reading `mimic score` runs back for the quality evaluation: one checkpoint's score files as columns, joined with
 * the other checkpoints' mean and with the control runs (the same checkpoint scored against control references)
 * under suffixed column names (`mimic_proj_both:mean`, `mimic_proj_visual:neg_w`, ...). Rows are matched by
 * position and checked by uid: every run scored the same shards, so any difference is an error, not a join.
 */
import { join } from 'node:path';
import { MimicError } from '../errors.js';
import { readScoreFile } from '../scores/reader.js';
import { listScoreRuns } from '../scores/runs.js';
import { FLOAT_COLUMNS, LAYERS } from '../scores/schema.js';
import { utf8At, type Float32Column, type Uint32Column, type Utf8Column } from '../scores/columns.js';
import { CONTROL_KINDS, CONTROL_SUFFIX, type ControlKind } from './controls.js';
import { meanOverCheckpoints, type ScoredRows } from './evaluate.js';

/** The column that averages mimic_proj_both over checkpoints (the paper aggregates checkpoints). */
export const MEAN_SUFFIX = ':mean';

export interface CheckpointScores extends ScoredRows {
  /** Shard name (relative, as in the score files), row in the shard, sample key. */
  shard: string[];
  row: number[];
  key: string[];
  uid: (string | null)[];
  status: string[];
  /** Float score columns by name; NaN where the row has no value. */
  columns: Record<string, Float32Array | Float64Array>;
}

const IDENTITY = ['shard', 'row', 'key', 'uid', 'status'] as const;

/** Every row of one checkpoint folder's score files (`OUT/<checkpoint>`), files in name order. */
export async function readCheckpointScores(dir: string): Promise<CheckpointScores> {
  const runs = listScoreRuns(dir).checkpoints;
  if (runs.length !== 1) {
    throw new MimicError('E_USAGE', `${dir} holds ${runs.length} checkpoints (${runs.map((r) => r.name).join(', ')}), expected one`, {
      file: dir,
      hint: 'pass one checkpoint folder of the run: OUT/<checkpoint>',
    });
  }
  const { dir: root, files } = runs[0]!;
  const out: CheckpointScores = { shard: [], row: [], key: [], uid: [], status: [], columns: {} };
  const parts: Record<string, Float32Array[]> = Object.fromEntries(FLOAT_COLUMNS.map((c) => [c, []]));
  for (const f of files) {
    const data = await readScoreFile(join(root, f), { columns: [...IDENTITY, ...FLOAT_COLUMNS] });
    const text = (name: string) => data.columns[name] as Utf8Column;
    const rows = data.columns.row as Uint32Column;
    for (let i = 0; i < data.length; i++) {
      out.shard.push(utf8At(text('shard'), i) ?? '');
      out.row.push(rows.values[i]!);
      out.key.push(utf8At(text('key'), i) ?? '');
      out.uid.push(utf8At(text('uid'), i));
      out.status.push(utf8At(text('status'), i) ?? '');
    }
    for (const c of FLOAT_COLUMNS) parts[c]!.push((data.columns[c] as Float32Column).values);
  }
  for (const c of FLOAT_COLUMNS) out.columns[c] = concat(parts[c]!);
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface DemoRunsSpec {
  /** A score run folder (the --out of `mimic score`). */
  run: string;
  /** The checkpoint whose columns are evaluated (e.g. the final one). */
  checkpoint: string;
  /** Checkpoints of `run` averaged into mimic_proj_both:mean (none: no mean column). */
  meanOver?: readonly string[];
  /** Control runs by kind: each scored `checkpoint` against a control reference (see controls.ts). */
  controls?: Partial<Record<ControlKind, string>>;
}

/** The evaluated checkpoint's columns, plus the mean over checkpoints and every control's mimic columns. */
export async function readDemoScores(spec: DemoRunsSpec): Promise<CheckpointScores> {
  const main = await readCheckpointScores(join(spec.run, spec.checkpoint));
  const aligned = async (dir: string): Promise<CheckpointScores> => {
    const other = await readCheckpointScores(dir);
    const n = main.uid.length;
    if (other.uid.length !== n) {
      throw new MimicError('E_SCORES', `${dir} has ${other.uid.length} rows, ${join(spec.run, spec.checkpoint)} has ${n}`, {
        file: dir,
        hint: 'score the same shards in every run',
      });
    }
    for (let i = 0; i < n; i++) {
      if (other.uid[i] !== main.uid[i] || other.shard[i] !== main.shard[i] || other.row[i] !== main.row[i] || other.status[i] !== main.status[i]) {
        throw new MimicError('E_SCORES', `${dir} row ${i} (${other.shard[i]} row ${other.row[i]}, uid ${other.uid[i]}, ${other.status[i]}) differs ` +
          `from ${spec.checkpoint}'s (${main.shard[i]} row ${main.row[i]}, uid ${main.uid[i]}, ${main.status[i]})`, {
          file: dir,
          hint: 'score the same shards in every run',
        });
      }
    }
    return other;
  };
  if (spec.meanOver && spec.meanOver.length > 0) {
    const cols: ArrayLike<number>[] = [];
    for (const name of spec.meanOver) {
      cols.push(name === spec.checkpoint ? main.columns.mimic_proj_both! : (await aligned(join(spec.run, name))).columns.mimic_proj_both!);
    }
    main.columns[`mimic_proj_both${MEAN_SUFFIX}`] = meanOverCheckpoints(cols);
  }
  for (const kind of CONTROL_KINDS) {
    const dir = spec.controls?.[kind];
    if (!dir) continue;
    const c = await aligned(join(dir, spec.checkpoint));
    for (const l of LAYERS) {
      // The gradient norm does not depend on the direction: only the mimic columns differ.
      for (const m of ['mimic_proj', 'mimic_cos']) main.columns[`${m}_${l}${CONTROL_SUFFIX[kind]}`] = c.columns[`${m}_${l}`]!;
    }
  }
  return main;
}
