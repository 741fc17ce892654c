/** Shared by the reshard tests: the CLI as a child process, and shards read back sample by sample. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openShard } from '../../src/wds/shard-reader.js';
import { REPO } from '../helpers/bundles.js';

const exec = promisify(execFile);
export const MIMIC = join(REPO, 'bin', 'mimic');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function mimic(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  try {
    const r = await exec(MIMIC, args, { env: { ...process.env, MIMIC_LOG_LEVEL: 'warn', ...env }, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

export interface ReadSample {
  shard: string;
  row: number;
  key: string;
  /** Member names after the key (the extension as written), in tar order, with their bytes. */
  members: { ext: string; bytes: Buffer }[];
  uid: string | null;
}

/** Every sample of the shards, every member's bytes. */
export async function readSamples(paths: string[]): Promise<ReadSample[]> {
  const out: ReadSample[] = [];
  for (const p of paths) {
    const shard = await openShard(p);
    for await (const s of shard.samples) {
      const members = s.members.map((m) => {
        const base = m.name.slice(m.name.lastIndexOf('/') + 1);
        return { ext: base.slice(base.indexOf('.') + 1), bytes: s.files.get(m.ext)! };
      });
      let uid: string | null = null;
      const json = s.files.get('json');
      if (json) {
        try {
          uid = (JSON.parse(json.toString('utf8')) as { uid?: string }).uid ?? null;
        } catch {
          uid = null;
        }
      }
      out.push({ shard: p, row: s.row, key: s.key, members, uid });
    }
  }
  return out;
}

/** The output shards of a reshard folder, in order. */
export function outputShards(dir: string): string[] {
  return readdirSync(dir).filter((f) => /^\d+\.tar$/.test(f)).sort().map((f) => join(dir, f));
}

/** sha256 of every file in a folder (names sorted), for "nothing changed" and "the same bytes" checks. */
export function folderHashes(dir: string, filter: (name: string) => boolean = () => true): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .filter(filter)
      .sort()
      .map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]),
  );
}

/** A DataComp subset .npy of these uids, in the given order (duplicates kept). */
export function npyOf(uids: string[]): Buffer {
  let header = `{'descr': [('f0', '<u8'), ('f1', '<u8')], 'fortran_order': False, 'shape': (${uids.length},), }`;
  const total = 10 + header.length + 1;
  header = header.padEnd(header.length + ((64 - (total % 64)) % 64), ' ') + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(pre);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(16 * uids.length);
  uids.forEach((u, i) => {
    const v = BigInt(`0x${u}`);
    body.writeBigUInt64LE(v >> 64n, i * 16);
    body.writeBigUInt64LE(v & ((1n << 64n) - 1n), i * 16 + 8);
  });
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}
