/**
 * Finding score files on disk. A run folder is `OUT/<checkpoint>/<shard path>.arrow` plus `OUT/_manifests/`;
 * a user may point at `OUT` (every checkpoint in it) or at one `OUT/<checkpoint>` folder.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { MimicError } from '../errors.js';
import { ScoreFileReader } from './reader.js';
import { META } from './schema.js';

export interface CheckpointRun {
  /** The checkpoint's folder name. */
  name: string;
  /** Its folder (absolute). */
  dir: string;
  /** Score files relative to `dir`, '/'-separated, sorted by code unit. */
  files: string[];
}

export interface ScoreRuns {
  checkpoints: CheckpointRun[];
}

const MANIFESTS = '_manifests';

/** A file that is a finished score file (not a temporary one of an unfinished write). */
export function isScoreFileName(name: string): boolean {
  return name.endsWith('.arrow') && !name.includes('.tmp-');
}

function walk(dir: string, root: string, out: string[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw new MimicError('E_SCORES', `cannot list ${dir}: ${(e as Error).message}`, { file: dir });
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (dir === root && (e.name === MANIFESTS || e.name.startsWith('.'))) continue;
      walk(p, root, out);
    } else if (e.isFile() && isScoreFileName(e.name)) {
      out.push(relative(root, p).split(sep).join('/'));
    }
  }
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A run root whose _manifests folder is gone: no score file at the top, and each top-level folder's files
 * name that folder as their checkpoint (META.checkpoint). Reading one footer per folder decides it.
 */
function looksLikeRunRoot(abs: string): boolean {
  const entries = readdirSync(abs, { withFileTypes: true });
  if (entries.some((e) => e.isFile() && isScoreFileName(e.name))) return false;
  const subs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.') && !e.name.startsWith('_'));
  if (subs.length === 0) return false;
  for (const d of subs) {
    const files: string[] = [];
    walk(join(abs, d.name), join(abs, d.name), files);
    if (files.length === 0) continue;
    try {
      const r = ScoreFileReader.open(join(abs, d.name, files[0]), { validate: false });
      const ck = r.metadata[META.checkpoint];
      r.close();
      if (ck !== d.name) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * The checkpoints under `dir`: with `dir/_manifests` present (or, without it, when every top-level folder's
 * files record that folder's name as their checkpoint), `dir` is a run root and every other top-level folder
 * is a checkpoint; otherwise `dir` itself is one checkpoint named after the folder.
 */
export function listScoreRuns(dir: string): ScoreRuns {
  const abs = resolve(dir);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new MimicError('E_SCORES', `score run not found: ${dir}`, { file: dir, hint: 'pass the --out folder of `mimic score` or one of its checkpoint folders' });
  }
  if (!st.isDirectory()) {
    throw new MimicError('E_SCORES', `${dir} is not a folder`, { file: dir, hint: 'pass the --out folder of `mimic score` or one of its checkpoint folders' });
  }
  let isRoot = false;
  try {
    isRoot = statSync(join(abs, MANIFESTS)).isDirectory();
  } catch {
    isRoot = looksLikeRunRoot(abs);
  }
  const checkpoints: CheckpointRun[] = [];
  if (isRoot) {
    const subs = readdirSync(abs, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name !== MANIFESTS && !e.name.startsWith('.') && !e.name.startsWith('_'))
      .map((e) => e.name)
      .sort(byCodeUnit);
    for (const name of subs) {
      const files: string[] = [];
      walk(join(abs, name), join(abs, name), files);
      if (files.length) checkpoints.push({ name, dir: join(abs, name), files: files.sort(byCodeUnit) });
    }
  } else {
    const files: string[] = [];
    walk(abs, abs, files);
    if (files.length) checkpoints.push({ name: basename(abs), dir: abs, files: files.sort(byCodeUnit) });
  }
  if (checkpoints.length === 0) {
    throw new MimicError('E_SCORES', `no score files (*.arrow) under ${dir}`, {
      file: dir,
      hint: 'run `mimic score` first, or point at its --out folder',
    });
  }
  return { checkpoints };
}

/**
 * The shards of a checkpoint's run that have no score file yet, from the run record (`_manifests/run.json`
 * beside the checkpoint folder). Null when there is no record to compare with (files copied out of a run).
 */
export function missingScoreFiles(c: CheckpointRun): { expected: number; missing: string[] } | null {
  let names: unknown;
  try {
    names = (JSON.parse(readFileSync(join(dirname(c.dir), MANIFESTS, 'run.json'), 'utf8')) as { shardNames?: unknown }).shardNames;
  } catch {
    return null;
  }
  if (!Array.isArray(names)) return null;
  const have = new Set(c.files);
  return { expected: names.length, missing: names.filter((n): n is string => typeof n === 'string' && !have.has(`${n}.arrow`)) };
}
