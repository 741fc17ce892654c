/**
 * Real model bundles for tests: scripts/export_bundle.py run with PyTorch (/usr/bin/python3). Exports are cached
 * in a temp folder keyed by the arguments and the exporter's source, so a suite exports each variant once; callers
 * get their own copy (tests may damage it) unless they ask for the shared read-only one.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const PYTHON = process.env.MIMIC_TEST_PYTHON ?? '/usr/bin/python3';
export const EXPORTER = join(REPO, 'scripts', 'export_bundle.py');
export const CLIP_VOCAB = join(REPO, '..', 'shared', 'data', 'bpe_simple_vocab_16e6.txt.gz');
const CACHE = join(tmpdir(), 'mimic-test-bundles');

export interface TinyBundleOptions {
  /** Random init seed (and perturbation noise seed). Default 0. */
  seed?: number;
  /** Relative noise added to every weight: a proxy sharing the lineage of `from` (or of the seed's model). */
  perturb?: number;
  /** A bundle folder (rebuilt from its recipe) or a checkpoint to start from, instead of random weights. */
  from?: string;
  /** Text context length (default 77). */
  contextLength?: number;
  /** Projection size P (default 32). */
  embedDim?: number;
  /** Bundle name in model.json. */
  name?: string;
  /** textual.onnx's sequence axis: 'dynamic' (the exporter's default) or 'fixed' to the context length. */
  textLength?: 'dynamic' | 'fixed';
}

function exporterArgs(o: TinyBundleOptions): string[] {
  const args = o.from ? ['--init-from', o.from] : ['--config', 'tiny'];
  args.push('--seed', String(o.seed ?? 0));
  if (o.perturb) args.push('--perturb', String(o.perturb));
  if (o.contextLength) args.push('--context-length', String(o.contextLength));
  if (o.embedDim) args.push('--embed-dim', String(o.embedDim));
  if (o.name) args.push('--name', o.name);
  if (o.textLength) args.push('--text-length', o.textLength);
  args.push('--vocab', CLIP_VOCAB, '--verify', 'skip');
  return args;
}

function cacheKey(o: TinyBundleOptions): string {
  const h = createHash('sha256');
  for (const f of ['export_bundle.py', 'clip_model.py', 'safetensors_io.py']) h.update(readFileSync(join(REPO, 'scripts', f)));
  h.update(JSON.stringify({ ...o, from: undefined }));
  if (o.from) {
    // Key by what the source bundle is, not where it lies (tests pass copies in temp folders).
    for (const f of ['model.json', 'heads.safetensors']) {
      const p = join(o.from, f);
      h.update(existsSync(p) ? readFileSync(p) : `path:${o.from}`);
    }
  }
  return h.digest('hex').slice(0, 20);
}

const pending = new Map<string, Promise<string>>();

/** The cached bundle for these options (shared: do not modify it). */
export function tinyBundle(opts: TinyBundleOptions = {}): Promise<string> {
  const key = cacheKey(opts);
  let p = pending.get(key);
  if (!p) {
    p = exportCached(key, opts);
    pending.set(key, p);
  }
  return p;
}

async function exportCached(key: string, opts: TinyBundleOptions): Promise<string> {
  const out = join(CACHE, key);
  if (existsSync(join(out, 'model.json'))) return out;
  await mkdir(CACHE, { recursive: true });
  try {
    await run(PYTHON, [EXPORTER, '--out', out, ...exporterArgs(opts)], { timeout: 300_000 });
  } catch (e) {
    // Another test process may have exported the same bundle first (the exporter renames into place atomically).
    if (existsSync(join(out, 'model.json'))) return out;
    const err = e as { stderr?: string; message: string };
    throw new Error(`export_bundle.py failed: ${err.stderr || err.message}`);
  }
  return out;
}

/** Export (or take from the cache) a tiny bundle and copy it to `dir`, which the caller may modify. */
export async function makeTinyBundle(dir: string, opts: TinyBundleOptions = {}): Promise<string> {
  const src = await tinyBundle(opts);
  await rm(dir, { recursive: true, force: true });
  await cp(src, dir, { recursive: true });
  return dir;
}

/** Run the exporter with arbitrary arguments (no cache); resolves to its exit code and output. */
export async function runExporter(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(PYTHON, [EXPORTER, ...args], { timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Safetensors bytes, for tests that need heads of another dtype, shape or content (the library's writer). */
export { encodeSafetensors } from '../../src/model/safetensors.js';
