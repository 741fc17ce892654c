#!/usr/bin/env node
// Shard reading throughput from local disk, single process: generates a ~1 GB shard set (img2dataset-like
// samples: a 10–30 KB "jpg", a caption txt, a json with a uid) as .tar and as .tar.gz, then reads it with
// openShard, keeping every member's bytes (as scoring does) and keeping only txt+json (as a caption filter does).
// The image bytes are random with a skew (entropy ≈ 7.7 bits/byte, like JPEG data) so that gunzip does real
// work instead of copying stored blocks. The files are read right after being written, so they come from the page
// cache: this measures parsing, not the disk. Reports wall MB/s and samples/s, and MB per CPU-second
// (process.cpuUsage, steadier on a shared machine; gunzip runs on libuv's thread pool and is included).
// Usage: npm run bench:read -- [--gb 1] [--shards 10] [--runs 2] [--dir DIR] [--keep]
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { openShard, ShardWriter } from '../dist/wds/index.js';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const gb = Number(arg('gb', 1));
const nShards = Number(arg('shards', 10));
const runs = Number(arg('runs', 2));
const keep = argv.includes('--keep');
const dir = arg('dir', undefined) ?? mkdtempSync(join(os.tmpdir(), 'mimic-bench-read-'));

const AVG_SAMPLE = 20_000 + 2_600; // image + txt + json + three headers and their padding
const samplesPerShard = Math.round((gb * 1e9) / AVG_SAMPLE / nShards);

let state = 0x9e3779b9;
function fill(buf) {
  // xorshift32, with about 12% of bytes forced to 0: skewed like entropy-coded image data.
  let x = state;
  for (let i = 0; i < buf.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = (x & 0x700) === 0 ? 0 : x & 0xff;
  }
  state = x;
  return buf;
}

async function generate() {
  const tars = [];
  let sample = 0;
  const t0 = performance.now();
  let written = 0;
  for (let s = 0; s < nShards; s++) {
    const path = join(dir, `shard-${String(s).padStart(6, '0')}.tar`);
    const w = new ShardWriter(path);
    for (let i = 0; i < samplesPerShard; i++, sample++) {
      const key = String(sample).padStart(9, '0');
      const imageBytes = 10_000 + ((sample * 7919) % 20_001);
      await w.add(key, {
        jpg: fill(Buffer.allocUnsafe(imageBytes)),
        txt: `a photo of object number ${sample} on a table, taken at dusk`,
        json: JSON.stringify({ uid: (sample * 2654435761).toString(16).padStart(32, '0'), key, original_width: 256, original_height: 256 }),
      });
    }
    await w.close();
    written += statSync(path).size;
    tars.push(path);
  }
  const writeSec = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const gzs = [];
  for (const tar of tars) {
    const gz = tar.replace(/\.tar$/, '.tar.gz');
    await pipeline(createReadStream(tar), createGzip({ level: 1 }), createWriteStream(gz));
    gzs.push(gz);
  }
  const gzipSec = (performance.now() - t1) / 1000;
  return { tars, gzs, written, writeSec, gzipSec };
}

async function readSet(paths, wantExtensions) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let samples = 0;
  let tarBytes = 0;
  let storedBytes = 0;
  let memberBytes = 0;
  for (const p of paths) {
    const shard = await openShard(p, { wantExtensions });
    for await (const s of shard.samples) {
      samples++;
      for (const b of s.files.values()) memberBytes += b.length;
    }
    tarBytes += shard.stats.tarBytes;
    storedBytes += shard.stats.sourceBytes;
  }
  const sec = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  return { samples, tarBytes, storedBytes, memberBytes, sec, cpuSec };
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

const gen = await generate();
const gzBytes = gen.gzs.reduce((a, p) => a + statSync(p).size, 0);
console.log(
  `machine: ${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length} cores, node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`,
);
console.log(
  `shard set: ${nShards} shards × ${samplesPerShard} samples, tar ${fmt(gen.written / 1e6)} MB (written by ShardWriter at ${fmt(gen.written / 1e6 / gen.writeSec)} MB/s), ` +
    `tar.gz ${fmt(gzBytes / 1e6)} MB (gzip level 1) in ${dir}`,
);
console.log('');
const header = ['set', 'members read', 'run', 'MB/s (stored)', 'MB/s (tar)', 'samples/s', 'MB per CPU-s (tar)', 'peak RSS MB'];
const rows = [header];
const textOnly = (ext) => ext === 'txt' || ext === 'json';
for (const [name, paths] of [
  ['tar', gen.tars],
  ['tar.gz', gen.gzs],
]) {
  for (const [label, want] of [
    ['all', undefined],
    ['txt+json', textOnly],
  ]) {
    for (let r = 1; r <= runs; r++) {
      const m = await readSet(paths, want);
      rows.push([
        name,
        label,
        String(r),
        fmt(m.storedBytes / 1e6 / m.sec),
        fmt(m.tarBytes / 1e6 / m.sec),
        fmt(m.samples / m.sec),
        fmt(m.tarBytes / 1e6 / m.cpuSec),
        fmt(process.resourceUsage().maxRSS / 1024),
      ]);
    }
  }
}
const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
if (!keep && !arg('dir', undefined)) rmSync(dir, { recursive: true, force: true });
