#!/usr/bin/env node
// Decode/preprocess throughput on img2dataset-like 256-px JPEGs (quality 95), made with sharp from the real
// photo in ../shared/fixtures/wds/nemo-00000.tar (random crops, so every image differs).
// Reports wall rate with one image in flight (≈ one core) and images per CPU-second (process.cpuUsage,
// robust to a shared machine), for: header read, raw decode, full-size decode by the wasm JPEG decoder and by
// libvips, decode+resize+crop, + float32 CHW, + uint8 copy.
// Usage: npm run build && node scripts/bench-decode.mjs [--images 200] [--seconds 3] [--size 224] [--parallel 2]
//
// Difference to PIL/torchvision instead of speed (runs scripts/preprocess_ref.py on the same files):
//   node scripts/bench-decode.mjs --compare [--size 224] [--resize shortest|squash] [--resampler auto|pil|libvips]
//        [--fast-shrink] [--order clip] FILE...
// prints per file and overall max/mean |difference| in uint8 steps (LSB) and in normalised units.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import sharp from 'sharp';
import {
  CLIP_MEAN, CLIP_STD, configureSharp, decodeResized, decodeRgb, libvipsVersion, normalizeHwcToChw, normalizeTable,
  preprocessInto, preprocessUint8Into,
} from '../dist/image/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const flag = (name) => process.argv.includes(`--${name}`);
const str = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const nImages = arg('images', 200);
const seconds = arg('seconds', 3);
const size = arg('size', 224);
const parallel = arg('parallel', 1);

function tarMember(tarPath, name) {
  const buf = readFileSync(tarPath);
  for (let off = 0; off + 512 <= buf.length; ) {
    const n = buf.toString('latin1', off, off + 100).replace(/\0.*$/s, '');
    if (!n) break;
    const len = parseInt(buf.toString('latin1', off + 124, off + 136).replace(/\0.*$/s, '').trim(), 8);
    if (n === name) return buf.subarray(off + 512, off + 512 + len);
    off += 512 + Math.ceil(len / 512) * 512;
  }
  throw new Error(`${name} not in ${tarPath}`);
}

async function makeJpegs() {
  const photo = tarMember(new URL('../../shared/fixtures/wds/nemo-00000.tar', import.meta.url).pathname, '0.jpg');
  const { width, height } = await sharp(photo).metadata();
  const out = [];
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < nImages; i++) {
    const w = Math.floor(width * (0.4 + 0.6 * rnd()));
    const h = Math.floor(height * (0.4 + 0.6 * rnd()));
    const left = Math.floor((width - w) * rnd());
    const top = Math.floor((height - h) * rnd());
    // img2dataset's keep_ratio: shorter side to 256.
    const resize = w < h ? { width: 256 } : { height: 256 };
    out.push(await sharp(photo).extract({ left, top, width: w, height: h }).resize(resize).jpeg({ quality: 95 }).toBuffer());
  }
  return out;
}

async function measure(name, images, fn) {
  // Warm-up, then as many passes as fit in the time budget.
  for (let i = 0; i < Math.min(20, images.length); i++) await fn(images[i], i);
  let done = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (performance.now() - t0 < seconds * 1000) {
      const i = next++ % images.length;
      await fn(images[i], i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const row = { stage: name, images: done, 'img/s (wall)': +(done / wall).toFixed(1), 'img per CPU-s': +(done / cpuS).toFixed(1) };
  console.log(JSON.stringify(row));
  return row;
}

async function compare() {
  const valued = new Set(['--size', '--resize', '--resampler', '--order']);
  const files = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !valued.has(all[i - 1]));
  const cmpSpec = { size, mean: CLIP_MEAN, std: CLIP_STD, resize: str('resize', 'shortest') };
  const out = mkdtempSync(join(os.tmpdir(), 'mimic-cmp-'));
  const refArgs = [new URL('./preprocess_ref.py', import.meta.url).pathname, '--size', String(size), '--resize', cmpSpec.resize, '--order', str('order', 'convert-first'), '--uint8', '--out', out, ...files];
  const refs = execFileSync('/usr/bin/python3', refArgs, { encoding: 'utf8', maxBuffer: 1 << 26 }).trim().split('\n').map((l) => JSON.parse(l));
  const unit = 1 / 255 / Math.min(...CLIP_STD);
  let gmax = 0, gsum = 0, gn = 0, exact = 0, failed = 0;
  for (const [i, f] of files.entries()) {
    if (refs[i].error) { failed++; console.log(JSON.stringify({ file: f, reference_error: refs[i].error })); continue; }
    const ref = readFileSync(join(out, `${i}.bin`));
    const { pixels, source } = await decodeResized(readFileSync(f), cmpSpec, { resampler: str('resampler', 'auto'), fastShrinkOnLoad: flag('fast-shrink') });
    let max = 0, sum = 0;
    for (let k = 0; k < pixels.length; k++) { const d = Math.abs(pixels[k] - ref[k]); if (d > max) max = d; sum += d; }
    gmax = Math.max(gmax, max); gsum += sum; gn += pixels.length; if (max === 0) exact++;
    if (files.length <= 20) console.log(JSON.stringify({ file: f.split('/').pop(), mode: refs[i].mode, size: `${source.width}×${source.height}`, 'max LSB': max, 'mean LSB': +(sum / pixels.length).toFixed(4) }));
  }
  console.log(JSON.stringify({ files: files.length, failed, bit_exact: exact, 'max LSB': gmax, 'mean LSB': +(gsum / gn).toFixed(4), 'max normalised': +(gmax * unit).toFixed(4), 'mean normalised': +((gsum / gn) * unit).toFixed(5) }));
}
if (flag('compare')) {
  await compare();
  process.exit(0);
}

configureSharp({ concurrency: 1 });
const spec = { size, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' };
const jpegs = await makeJpegs();
const meta = await sharp(jpegs[0]).metadata();
console.log(JSON.stringify({
  machine: `${os.cpus()[0]?.model} ×${os.cpus().length}`, node: process.version, libvips: libvipsVersion(),
  images: jpegs.length, example: `${meta.width}×${meta.height}`, mean_bytes: Math.round(jpegs.reduce((a, b) => a + b.length, 0) / jpegs.length),
  size, parallel, note: 'shared machine: numbers are noisy',
}));
const floats = new Float32Array(3 * size * size);
const bytes = new Uint8Array(3 * size * size);
const table = normalizeTable(spec);
const pixels = (await decodeResized(jpegs[0], spec)).pixels;

await measure('metadata (header read)', jpegs, (b) => sharp(b).metadata());
await measure('raw decode (full size)', jpegs, (b) => sharp(b, { ignoreIcc: true }).raw().toBuffer());
await measure('decodeRgb, wasm JPEG decoder (full size)', jpegs, (b) => decodeRgb(b, { jpegDecoder: 'wasm' }));
await measure('decodeRgb, libvips (full size)', jpegs, (b) => decodeRgb(b, { jpegDecoder: 'libvips' }));
// Shrinking goes through libvips with either decoder (one call decodes and resizes).
await measure('decode+resize+crop (uint8 S×S×3)', jpegs, (b) => decodeResized(b, spec));
await measure('preprocessUint8Into', jpegs, (b) => preprocessUint8Into(b, spec, bytes, 0));
await measure('preprocessInto (float32 CHW)', jpegs, (b) => preprocessInto(b, spec, floats, 0));
await measure("preprocessInto, resampler 'pil' (bit-exact PIL)", jpegs, (b) => preprocessInto(b, spec, floats, 0, { resampler: 'pil' }));
// Small images are enlarged, through the PIL re-implementation in every mode.
const small = await Promise.all(jpegs.slice(0, 50).map((b) => sharp(b).resize({ width: 96 }).jpeg({ quality: 95 }).toBuffer()));
await measure('preprocessInto, 96-px JPEGs enlarged', small, (b) => preprocessInto(b, spec, floats, 0));

// The JavaScript part alone: table lookup HWC uint8 → CHW float32, against the naive arithmetic loop.
const reps = 2000;
let t0 = performance.now();
for (let r = 0; r < reps; r++) normalizeHwcToChw(pixels, size * size, table, floats, 0);
const lutUs = ((performance.now() - t0) * 1000) / reps;
t0 = performance.now();
const [m0, m1, m2] = spec.mean; const [s0, s1, s2] = spec.std; const n = size * size;
for (let r = 0; r < reps; r++) {
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    floats[i] = (pixels[j] / 255 - m0) / s0;
    floats[n + i] = (pixels[j + 1] / 255 - m1) / s1;
    floats[2 * n + i] = (pixels[j + 2] / 255 - m2) / s2;
  }
}
const naiveUs = ((performance.now() - t0) * 1000) / reps;
console.log(JSON.stringify({ stage: 'float32 CHW conversion only', 'table µs/img': +lutUs.toFixed(1), 'arithmetic µs/img': +naiveUs.toFixed(1) }));
