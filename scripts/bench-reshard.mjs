#!/usr/bin/env node
// `mimic reshard` throughput, single process, local disk: generates a shard set (img2dataset-like samples: a
// 10–30 KB "jpg" of random bytes, a caption, a json with a uid), keeps a random fraction of the uids (a DataComp
// .npy, sorted, as `mimic filter --npy` writes it), reshards, and reports input MB/s and samples/s read, output
// MB/s, and the process's peak RSS (VmHWM). The sources were just written, so they come from the page cache:
// this measures the reshard code (tar parsing, uid lookup, tar writing, sha256 of each output shard), not the disk.
// Usage: npm run bench:reshard -- [--gb 0.5] [--shards 20] [--keep 0.3] [--shard-size 10000] [--dir DIR] [--keep-files]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { reshard, ShardWriter } from '../dist/index.js';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const gb = Number(arg('gb', 0.5));
const nShards = Number(arg('shards', 20));
const keepFraction = Number(arg('keep', 0.3));
const shardSize = Number(arg('shard-size', 10_000));
const dir = arg('dir', undefined) ?? mkdtempSync(join(os.tmpdir(), 'mimic-bench-reshard-'));
const samplesPerShard = Math.round((gb * 1e9) / 22_600 / nShards);

const peakRss = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;

const sources = [];
const kept = [];
let inputBytes = 0;
let x = 0x9e3779b9;
const rnd = () => {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) / 2 ** 32;
};
const t0 = performance.now();
for (let s = 0; s < nShards; s++) {
  const path = join(dir, 'src', `${String(s).padStart(5, '0')}.tar`);
  const w = new ShardWriter(path);
  for (let i = 0; i < samplesPerShard; i++) {
    const uid = createHash('md5').update(`${s}:${i}`).digest('hex');
    if (rnd() < keepFraction) kept.push(uid);
    const image = randomBytes(10_000 + Math.floor(rnd() * 20_000));
    await w.add(`${String(s).padStart(5, '0')}${String(i).padStart(4, '0')}`, {
      jpg: image,
      txt: `a photo of thing ${s}/${i}`,
      json: JSON.stringify({ uid, caption: `thing ${i}`, original_width: 640, original_height: 480 }),
    });
    inputBytes += image.length + 600;
  }
  await w.close();
  sources.push(path);
}
console.log(`generated ${nShards} shards × ${samplesPerShard} samples (${(inputBytes / 1e9).toFixed(2)} GB) in ${((performance.now() - t0) / 1000).toFixed(1)} s; keeping ${kept.length} uids`);

// The DataComp subset: sorted (u8, u8) records.
kept.sort();
let header = `{'descr': [('f0', '<u8'), ('f1', '<u8')], 'fortran_order': False, 'shape': (${kept.length},), }`;
header = header.padEnd(header.length + ((64 - ((11 + header.length) % 64)) % 64), ' ') + '\n';
const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
pre.writeUInt16LE(header.length, 8);
const body = Buffer.alloc(16 * kept.length);
kept.forEach((u, i) => {
  body.write(Buffer.from(u.slice(0, 16), 'hex').reverse().toString('hex'), i * 16, 'hex');
  body.write(Buffer.from(u.slice(16), 'hex').reverse().toString('hex'), i * 16 + 8, 'hex');
});
const npy = join(dir, 'kept.npy');
writeFileSync(npy, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));

const rssBefore = peakRss();
const t1 = performance.now();
const cpu0 = process.cpuUsage();
const s = await reshard({ selection: npy, sources, out: join(dir, 'out'), shardSize });
const wall = (performance.now() - t1) / 1000;
const cpu = process.cpuUsage(cpu0);
if (s.written !== kept.length) throw new Error(`wrote ${s.written} of ${kept.length} kept samples`);
console.log(
  `reshard: ${s.samplesRead} samples read in ${wall.toFixed(2)} s: ${(s.samplesRead / wall).toFixed(0)} samples/s, ` +
    `${(inputBytes / 1e6 / wall).toFixed(0)} MB/s in; ${s.written} written in ${s.shards} shards, ${(s.bytes / 1e6 / wall).toFixed(0)} MB/s out; ` +
    `CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s; peak RSS ${peakRss().toFixed(0)} MB (${rssBefore.toFixed(0)} MB after generating)`,
);
console.log(`machine: ${os.cpus()[0]?.model ?? '?'} × ${os.availableParallelism()}, node ${process.version}`);
if (!argv.includes('--keep-files')) rmSync(dir, { recursive: true, force: true });
