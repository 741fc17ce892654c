#!/usr/bin/env node
// The GPU benchmark of issue 7, in one run (scripts/bench-gpu is the launcher; see it for the usage). On a GPU
// machine, after `source /tmp/stage/setup.sh`:
//   1. env      the machine, node, onnxruntime, `mimic doctor` (is the CUDA EP there?)
//   2. bundle   a ViT-B/32-sized random bundle made here by this machine's PyTorch (export_bundle.py --config
//               vit-b-32, ~600 MB: too large to carry), its fp16 encoders (scripts/add-fp16), and a reference
//               sharing its encoder files with perturbed heads (bench_gpu_torch.py reference)
//   3. shards   generated shards of 256×256 JPEGs (img2dataset's default size, q90) with captions and uids
//   4. decode   CPU decode rate with every core: decode + resize + crop as the pipeline does it, and decode alone
//               (libvips on libuv's pool; the wasm JPEG decoder on cores − 2 threads, as prep threads run it)
//   5. session  the pure session rate (inputs copied from the host each run, as in the pipeline) for fp32/fp16 ×
//               float32/uint8 pixels at batch 256 (and fp16/uint8 at 512): image encoder, text encoder, and the
//               whole batch (both encoders + gradient graph); features compared with fp32/float32 on this device
//   6. e2e      `mimic score` end to end on the shards: fp16+uint8 (resize on the CPU, and in the graph with the
//               wasm and the libvips JPEG decoder, and in two processes), fp32+uint8, 8 prep threads, 2 inference threads on the device,
//               fp32+float32; score files compared (uint8 vs float32, fp16 vs fp32, wasm vs libvips, ...)
//   7. torch    PyTorch eager on the same device: image/text towers fp32 and fp16 with inputs on the device, and
//               fp16 with uint8 pixels copied from the host
// A markdown table and a JSON file are rewritten in --out after every step, so a run cut short still leaves what
// it measured. Each step has a time limit; steps are skipped when the overall deadline is near.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const flag = (name) => argv.includes(`--${name}`);

const CPU = flag('cpu');
const MODEL = opt('model', CPU ? 'tiny' : 'vit-b-32');
const DEVICE = opt('device', CPU ? 'cpu' : 'cuda');
const SAMPLES = Number(opt('samples', CPU ? (MODEL === 'tiny' ? '2048' : '384') : '30000'));
const SHARD_SIZE = Number(opt('shard-size', CPU ? '256' : '2000'));
const BATCH = Number(opt('batch', CPU && MODEL !== 'tiny' ? '64' : '256'));
const SECONDS = Number(opt('seconds', CPU ? '2' : '3'));
const DEADLINE_S = Number(opt('deadline-s', '540'));
const WORK = opt('work', '/tmp/mimic-bench-gpu');
const OUT = opt('out', process.env.OUT || join(WORK, 'report'));
const PYTHON = opt('python', process.env.MIMIC_BENCH_PYTHON || '/usr/bin/python3');
const VOCAB = join(REPO, 'models', 'demo-reference', 'bpe_simple_vocab_16e6.txt.gz');
const ONLY = opt('only', '').split(',').filter(Boolean);
const t0 = performance.now();
const elapsed = () => (performance.now() - t0) / 1000;

mkdirSync(WORK, { recursive: true });
mkdirSync(OUT, { recursive: true });
mkdirSync(join(OUT, 'logs'), { recursive: true });

const report = {
  started: new Date().toISOString(),
  args: argv,
  settings: { model: MODEL, device: DEVICE, samples: SAMPLES, shardSize: SHARD_SIZE, batch: BATCH, seconds: SECONDS },
  machine: {},
  steps: {},
  session: [],
  decode: {},
  e2e: [],
  torch: null,
  agreement: {},
};

// ------------------------------------------------------------------------------------------------ plumbing

function save() {
  report.elapsedS = +elapsed().toFixed(1);
  writeFileSync(join(OUT, 'bench-gpu.json'), JSON.stringify(report, null, 2));
  writeFileSync(join(OUT, 'bench-gpu.md'), markdown());
}

/** A child process with a time limit; its output goes to OUT/logs/<label>.log. Resolves to { code, stdout, stderr, timedOut }. */
function child(label, cmd, args, { timeoutS, env = {}, cwd = REPO } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-p.pid, 'SIGKILL'); } catch { p.kill('SIGKILL'); }
    }, Math.max(1, timeoutS) * 1000);
    const done = (code) => {
      clearTimeout(timer);
      writeFileSync(join(OUT, 'logs', `${label}.log`), `$ ${cmd} ${args.join(' ')}\n-- exit ${code}${timedOut ? ' (timed out)' : ''}\n-- stdout\n${stdout.slice(-200_000)}\n-- stderr\n${stderr.slice(-200_000)}\n`);
      resolve({ code, stdout, stderr, timedOut });
    };
    p.on('error', (e) => { stderr += String(e); done(-1); });
    p.on('close', (code) => done(code));
  });
}

/** The last `{"result": ...}` line a node child printed. */
function resultOf(r) {
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{"result"')).at(-1);
  return line ? JSON.parse(line).result : null;
}

/** Runs a step within its limit and the overall deadline; records ok / failed / skipped and the reason. */
async function step(name, limitS, fn) {
  if (ONLY.length && !ONLY.includes(name)) return;
  const left = DEADLINE_S - elapsed() - 5;
  if (left < Math.min(20, limitS)) {
    report.steps[name] = { status: 'skipped', reason: `deadline (${elapsed().toFixed(0)} s of ${DEADLINE_S} s used)` };
    save();
    return;
  }
  const s0 = elapsed();
  console.log(`\n== ${name} (limit ${Math.min(limitS, left).toFixed(0)} s; ${s0.toFixed(0)} s elapsed)`);
  try {
    await fn(Math.min(limitS, left));
    report.steps[name] = { status: 'ok', seconds: +(elapsed() - s0).toFixed(1) };
  } catch (e) {
    report.steps[name] = { status: 'failed', seconds: +(elapsed() - s0).toFixed(1), error: String(e?.message ?? e).slice(0, 2000) };
    console.log(`   failed: ${report.steps[name].error}`);
  }
  save();
}

const fmt = (v, d = 0) => (v === undefined || v === null || Number.isNaN(v) ? '–' : Number(v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

// ------------------------------------------------------------------------------------------------ steps

async function envStep(limit) {
  const cpus = os.cpus();
  report.machine = {
    cpu: cpus[0]?.model ?? '?', cores: os.availableParallelism(), memGiB: +(os.totalmem() / 2 ** 30).toFixed(0),
    node: process.version, platform: `${process.platform}/${process.arch}`, loadavg: os.loadavg(),
    uvThreadpool: process.env.UV_THREADPOOL_SIZE ?? '(unset)',
  };
  const smi = await child('nvidia-smi', 'nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'], { timeoutS: 20 });
  report.machine.gpus = smi.code === 0 ? smi.stdout.trim().split('\n') : [];
  const doctor = await child('doctor', process.execPath, [join(REPO, 'bin', 'mimic'), 'doctor'], { timeoutS: Math.min(limit, 90) });
  report.machine.doctor = (doctor.stdout + doctor.stderr).trim().split('\n').slice(0, 40);
  const py = await child('python', PYTHON, ['-c', 'import json, torch; import importlib.util as u; print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(), "onnx": u.find_spec("onnx") is not None}))'], { timeoutS: 60 });
  report.machine.python = py.code === 0 ? JSON.parse(py.stdout.trim().split('\n').at(-1)) : { error: py.stderr.slice(-500) };
  console.log(JSON.stringify(report.machine, null, 1));
}

const bundleDir = (role) => join(WORK, `${MODEL}-${role}`);

async function bundleStep(limit) {
  const proxy = bundleDir('proxy');
  const reference = bundleDir('reference');
  const stop = elapsed() + limit;
  if (!existsSync(join(proxy, 'model.json'))) {
    const args = [join(REPO, 'scripts', 'export_bundle.py'), '--out', proxy, '--config', MODEL, '--seed', '0', '--vocab', VOCAB, '--verify', 'skip', '--force'];
    let r = await child('export', PYTHON, args, { timeoutS: stop - elapsed() });
    if (r.code !== 0 && !r.timedOut) {
      // A PyTorch that cannot trace the cut text length still exports the fixed one.
      console.log('   export failed; retrying with --text-length fixed');
      r = await child('export-fixed', PYTHON, [...args, '--text-length', 'fixed'], { timeoutS: stop - elapsed() });
    }
    if (r.code !== 0) throw new Error(`export_bundle.py failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${r.stderr.slice(-800)}`);
    report.bundleNotes = r.stdout.trim().split('\n');
  }
  const manifest = JSON.parse(readFileSync(join(proxy, 'model.json'), 'utf8'));
  if (!manifest.variants?.fp16) {
    const r = await child('add-fp16', process.execPath, [join(REPO, 'scripts', 'add-fp16'), proxy], { timeoutS: stop - elapsed() });
    if (r.code !== 0) throw new Error(`add-fp16 failed: ${r.stderr.slice(-800)}`);
  }
  if (!existsSync(join(reference, 'model.json'))) {
    const r = await child('reference', PYTHON, [join(REPO, 'scripts', 'bench_gpu_torch.py'), 'reference', proxy, reference], { timeoutS: stop - elapsed() });
    if (r.code !== 0) throw new Error(`bench_gpu_torch.py reference failed: ${r.stderr.slice(-800)}`);
  }
  const size = (d) => readdirSync(d).reduce((a, f) => a + statSize(join(d, f)), 0);
  report.bundle = { proxy, reference, mb: +(size(proxy) / 1e6).toFixed(0), textLength: JSON.parse(readFileSync(join(proxy, 'model.json'), 'utf8')).source?.text_length ?? null };
  console.log(`   bundles ready: ${proxy} (${report.bundle.mb} MB), ${reference}`);
}

function statSize(p) {
  try { return statSync(p).size; } catch { return 0; }
}

const WORDS = ('a the photo of dog cat red blue green small large old new house car tree street beach mountain city person man woman ' +
  'child playing running sitting on in with at near two three white black wooden metal view sunset kitchen table food plate bowl ' +
  'coffee cup book shelf window door light night day river lake boat bridge').split(' ');

const shardDir = () => join(WORK, `shards-256px-${SAMPLES}-${SHARD_SIZE}`);
const shardCount = () => Math.ceil(SAMPLES / SHARD_SIZE);
const shardGlob = () => join(shardDir(), `shard-{00000..${String(shardCount() - 1).padStart(5, '0')}}.tar`);

/** Distinct 256×256 JPEGs (smooth random content plus noise, q90: 10–25 KB each, like img2dataset's). */
async function makeJpegs(count) {
  const { default: sharp } = await import('sharp');
  let seed = 12345;
  const rnd = () => {
    seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
    return seed / 4294967296;
  };
  const out = [];
  for (let i = 0; i < count; i++) {
    const small = Buffer.alloc(6 * 6 * 3);
    for (let k = 0; k < small.length; k++) small[k] = Math.floor(rnd() * 256);
    const px = await sharp(small, { raw: { width: 6, height: 6, channels: 3 } }).resize(256, 256, { kernel: 'cubic' }).raw().toBuffer();
    for (let k = 0; k < px.length; k++) px[k] = Math.max(0, Math.min(255, px[k] + Math.floor((rnd() - 0.5) * 40)));
    out.push(await sharp(px, { raw: { width: 256, height: 256, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  }
  return { jpegs: out, rnd };
}

async function shardsStep() {
  const dir = shardDir();
  if (existsSync(join(dir, 'done.json'))) return void console.log(`   cached: ${dir}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Decode cost does not depend on which image it is: 1,024 distinct JPEGs, reused; captions and uids all differ.
  const { jpegs, rnd } = await makeJpegs(Math.min(1024, SAMPLES));
  writeFileSync(join(WORK, 'jpegs.json'), JSON.stringify(jpegs.slice(0, 256).map((b) => b.toString('base64'))));
  const { ShardWriter } = await import('../dist/wds/index.js');
  const sizes = {};
  for (let s = 0; s < shardCount(); s++) {
    const name = `shard-${String(s).padStart(5, '0')}.tar`;
    const w = new ShardWriter(join(dir, name));
    let n = 0;
    for (let i = s * SHARD_SIZE; i < Math.min(SAMPLES, (s + 1) * SHARD_SIZE); i++, n++) {
      const words = Array.from({ length: 5 + Math.floor(rnd() * 20) }, () => WORDS[Math.floor(rnd() * WORDS.length)]);
      const uid = Array.from({ length: 32 }, () => Math.floor(rnd() * 16).toString(16)).join('');
      await w.add(String(i).padStart(9, '0'), { jpg: jpegs[i % jpegs.length], txt: words.join(' '), json: JSON.stringify({ uid, caption: words.join(' ') }) });
    }
    await w.close();
    sizes[name] = n;
  }
  writeFileSync(join(dir, 'sizes.json'), JSON.stringify(sizes));
  writeFileSync(join(dir, 'done.json'), JSON.stringify({ samples: SAMPLES, shardSize: SHARD_SIZE }));
  console.log(`   wrote ${SAMPLES} samples in ${shardCount()} shards to ${dir}`);
}

async function decodeStep(limit) {
  const r = await child('decode', process.execPath, [fileURLToPath(import.meta.url), '--child', 'decode', '--work', WORK, '--seconds', String(SECONDS + 1), '--model', MODEL],
    { timeoutS: limit, env: { UV_THREADPOOL_SIZE: String(os.availableParallelism()) } });
  const res = resultOf(r);
  if (!res) throw new Error(`decode child failed: ${r.stderr.slice(-800)}`);
  report.decode = res;
  console.log(`   ${JSON.stringify(res)}`);
}

const SESSION_CONFIGS = [
  { precision: 'fp32', pixels: 'float32', batch: BATCH },
  { precision: 'fp32', pixels: 'uint8', batch: BATCH },
  { precision: 'fp16', pixels: 'float32', batch: BATCH },
  { precision: 'fp16', pixels: 'uint8', batch: BATCH },
  { precision: 'fp16', pixels: 'uint8', batch: BATCH * 2 },
  // Frames of the shards' 256×256 images, resized in the graph (--source-size 256x256).
  { precision: 'fp16', pixels: 'uint8', batch: BATCH, source: 256 },
];

async function sessionStep(limit) {
  const stop = elapsed() + limit;
  for (const c of SESSION_CONFIGS) {
    const left = stop - elapsed();
    if (left < 15) { report.session.push({ ...c, skipped: 'step time limit' }); continue; }
    const r = await child(`session-${c.precision}-${c.pixels}-${c.batch}${c.source ? `-src${c.source}` : ''}`, process.execPath, [fileURLToPath(import.meta.url), '--child', 'session',
      '--spec', JSON.stringify({ ...c, proxy: bundleDir('proxy'), reference: bundleDir('reference'), device: DEVICE, seconds: SECONDS, work: WORK })], { timeoutS: Math.min(left, 120) });
    const res = resultOf(r);
    report.session.push(res ? { ...c, ...res } : { ...c, error: r.timedOut ? 'timed out' : r.stderr.slice(-600) });
    console.log(`   ${JSON.stringify(report.session.at(-1))}`);
    save();
  }
  // Features of the same inputs on this device: uint8 transport and fp16 against fp32/float32.
  const base = join(WORK, `feat-fp32-float32-${BATCH}`);
  for (const c of SESSION_CONFIGS.slice(1, 4)) {
    const other = join(WORK, `feat-${c.precision}-${c.pixels}-${c.batch}`);
    if (existsSync(`${base}.image.bin`) && existsSync(`${other}.image.bin`)) {
      report.agreement[`${c.precision}/${c.pixels} vs fp32/float32 (features)`] = {
        image: relErr(readF32(`${other}.image.bin`), readF32(`${base}.image.bin`)),
        text: relErr(readF32(`${other}.text.bin`), readF32(`${base}.text.bin`)),
      };
    }
  }
}

const readF32 = (p) => { const b = readFileSync(p); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
function relErr(a, b) {
  let d = 0, m = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return +(d / (m || 1)).toExponential(2);
}

// Most informative first (a run cut short by the deadline keeps those). Default prep threads from 8 cores: cores − 2
// (cores/4 with --jpeg-decoder libvips). `processes`: that many `mimic score` processes on the same device, each
// with its share of the shards (--num-workers) and of the cores: for when one scoring thread is the limit.
const E2E_CONFIGS = [
  { name: 'fp16-uint8', precision: 'fp16', pixels: 'uint8' },
  { name: 'fp16-uint8-src256', precision: 'fp16', pixels: 'uint8', sourceSize: '256x256', jpegDecoder: 'wasm' },
  { name: 'fp16-uint8-src256-libvips', precision: 'fp16', pixels: 'uint8', sourceSize: '256x256', jpegDecoder: 'libvips' },
  { name: 'fp16-uint8-src256-2proc', precision: 'fp16', pixels: 'uint8', sourceSize: '256x256', jpegDecoder: 'wasm', processes: 2 },
  { name: 'fp32-uint8', precision: 'fp32', pixels: 'uint8' },
  { name: 'fp16-uint8-prep8', precision: 'fp16', pixels: 'uint8', prepWorkers: 8 },
  { name: 'fp16-uint8-2threads', precision: 'fp16', pixels: 'uint8', inferenceWorkers: 2 },
  { name: 'fp32-float32', precision: 'fp32', pixels: 'float32' },
];

async function e2eStep(limit) {
  const stop = elapsed() + limit;
  for (const c of E2E_CONFIGS) {
    const left = stop - elapsed();
    if (left < 25) { report.e2e.push({ ...c, skipped: 'step time limit' }); continue; }
    const out = join(WORK, `scores-${c.name}`);
    rmSync(out, { recursive: true, force: true });
    const n = c.processes ?? 1;
    const prepWorkers = c.prepWorkers ?? (n > 1 ? Math.max(1, Math.floor((os.availableParallelism() - 2 * n) / n)) : undefined);
    const args = [join(REPO, 'bin', 'mimic'), '--log-level', 'warn', 'score', shardGlob(), '--proxy', `p=${bundleDir('proxy')}`, '--reference', bundleDir('reference'),
      '--out', out, '--batch-size', String(BATCH), '--device', DEVICE, '--precision', c.precision, '--pixels', c.pixels, '--json',
      ...(c.inferenceWorkers ? ['--inference-workers', String(c.inferenceWorkers)] : []), ...(prepWorkers ? ['--prep-workers', String(prepWorkers)] : []),
      ...(c.sourceSize ? ['--source-size', c.sourceSize] : []), ...(c.jpegDecoder ? ['--jpeg-decoder', c.jpegDecoder] : []),
      ...(CPU ? ['--threads', '0'] : [])];
    const w0 = elapsed();
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => child(`e2e-${c.name}${n > 1 ? `-${i}` : ''}`, process.execPath,
      n > 1 ? [...args, '--num-workers', String(n), '--worker-index', String(i)] : args, { timeoutS: Math.min(left, 200) })));
    const wall = elapsed() - w0;
    const sums = runs.map((r) => { try { return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))); } catch { return null; } });
    if (sums.some((x) => !x)) {
      const bad = runs[sums.findIndex((x) => !x)];
      report.e2e.push({ ...c, error: bad.timedOut ? `timed out after ${wall.toFixed(0)} s` : bad.stderr.slice(-800) });
      save();
      continue;
    }
    // Several processes: samples add up, the run lasts as long as the slowest, loading overlaps.
    const samples = sums.reduce((a, x) => a + x.samples, 0);
    const loadS = Math.max(...sums.map((x) => x.loadS));
    const runS = Math.max(...sums.map((x) => x.wallS)) - loadS;
    const share = (x, v) => (v === undefined ? null : (100 * v) / Math.max(1e-9, x.wallS - x.loadS));
    report.e2e.push({
      ...c, ...(prepWorkers ? { prepWorkers } : {}), samples, provider: sums[0].provider, wallS: +wall.toFixed(1), loadS: +loadS.toFixed(1),
      rate: samples / wall, steadyRate: samples / Math.max(1e-9, runS), busyS: +sums.reduce((a, x) => a + x.inferenceBusyS, 0).toFixed(1),
      busyPct: +(sums.reduce((a, x) => a + share(x, x.inferenceBusyS), 0) / n / (c.inferenceWorkers ?? 1)).toFixed(0),
      scoringPct: sums[0].scoringThreadCpuS === undefined ? null : +Math.max(...sums.map((x) => share(x, x.scoringThreadCpuS))).toFixed(0),
      failedShards: sums.reduce((a, x) => a + x.shards.failed, 0), statuses: sums.map((x) => x.statuses),
    });
    console.log(`   ${JSON.stringify(report.e2e.at(-1))}`);
    save();
  }
  // Score files of the same shards: uint8 transport (same bytes expected) and fp16 (within a tolerance).
  const cmp = await child('compare', process.execPath, [fileURLToPath(import.meta.url), '--child', 'compare', '--work', WORK], { timeoutS: 60 });
  const res = resultOf(cmp);
  if (res) Object.assign(report.agreement, res);
}

async function torchStep(limit) {
  const r = await child('torch', PYTHON, [join(REPO, 'scripts', 'bench_gpu_torch.py'), 'rate', '--config', MODEL, '--batch', String(BATCH), '--seconds', String(SECONDS),
    '--device', CPU ? 'cpu' : DEVICE.replace(/^cuda$/, 'cuda:0')], { timeoutS: limit });
  const line = r.stdout.trim().split('\n').at(-1);
  if (r.code !== 0 || !line) throw new Error(`bench_gpu_torch.py rate failed: ${r.stderr.slice(-800)}`);
  report.torch = JSON.parse(line);
  console.log(`   ${line}`);
}

// ------------------------------------------------------------------------------------------------ report

/** min(session rate, decode rate) for an end-to-end run: its own session configuration and CPU work. */
function boundOf(e) {
  const source = e.sourceSize ? 256 : undefined;
  const sess = report.session.find((s) => s.precision === e.precision && s.pixels === e.pixels && s.batch === BATCH && s.source === source);
  const decode = e.sourceSize ? report.decode.decodeOnly : report.decode.decodeResized;
  return Math.min(sess?.full ?? Infinity, decode ?? Infinity);
}

function markdown() {
  const m = report.machine;
  const lines = [];
  lines.push(`# scripts/bench-gpu — ${report.started}`, '');
  lines.push(`Machine: ${(m.gpus ?? []).join('; ') || 'no GPU listed'} · ${m.cpu ?? '?'} × ${m.cores ?? '?'} · ${m.memGiB ?? '?'} GiB · node ${m.node ?? '?'} · ` +
    `PyTorch ${m.python?.torch ?? '?'} · model ${MODEL} (random weights) · device ${DEVICE} · batch ${BATCH} · ${SAMPLES} samples of 256×256 JPEG q90`, '');
  lines.push('| step | status | s |', '|---|---|---|');
  for (const [k, v] of Object.entries(report.steps)) lines.push(`| ${k} | ${v.status}${v.reason ? ` (${v.reason})` : ''}${v.error ? `: ${v.error.split('\n')[0].slice(0, 160)}` : ''} | ${v.seconds ?? ''} |`);
  lines.push('', '## Pure session rate (inputs copied from the host every run), samples/s', '');
  lines.push('| precision | pixels | batch | image encoder | text encoder | whole batch (both + gradient graph) | session load s |', '|---|---|---|---|---|---|---|');
  for (const s of report.session) {
    lines.push(`| ${s.precision} | ${s.pixels}${s.source ? ` ${s.source}² frames, resize in graph` : ''} | ${s.batch} | ${fmt(s.image)} | ${fmt(s.text)} | ${fmt(s.full)} | ${s.loadS ?? ''}${s.error ? ` error: ${String(s.error).split('\n').at(-1).slice(0, 120)}` : ''}${s.skipped ? ` skipped: ${s.skipped}` : ''} |`);
  }
  const d = report.decode;
  lines.push('', `## CPU decode (libvips: ${d.threads ?? '?'} libuv threads, ${d.inFlight ?? '?'} images in flight; wasm: ${d.wasmThreads ?? '?'} threads), images/s`, '');
  lines.push('| decode + resize + crop to S×S (decodeResized, libvips) | decode only, libvips (decodeRgb, for --source-size) | decode only, wasm | caption tokenize, one thread |', '|---|---|---|---|');
  lines.push(`| ${fmt(d.decodeResized)} | ${fmt(d.decodeOnlyLibvips)} | ${fmt(d.decodeOnlyWasm)} | ${fmt(d.tokenize)} |`);
  lines.push('', '## mimic score end to end, samples/s', '');
  lines.push('| run | samples | wall s | load s | samples/s (wall) | samples/s (after loading) | inference busy | scoring thread busy | vs min(session, decode) |', '|---|---|---|---|---|---|---|---|---|');
  for (const e of report.e2e) {
    const bound = boundOf(e);
    lines.push(`| ${e.name} | ${e.samples ?? ''} | ${e.wallS ?? ''} | ${e.loadS ?? ''} | ${fmt(e.rate)} | ${fmt(e.steadyRate)} | ${e.busyPct ?? ''}% | ${e.scoringPct ?? ''}% | ` +
      `${Number.isFinite(bound) && e.steadyRate ? `${fmt((100 * e.steadyRate) / bound)}% of ${fmt(bound)}` : ''}${e.error ? ` error: ${String(e.error).split('\n').at(-1).slice(0, 160)}` : ''}${e.skipped ? ` skipped: ${e.skipped}` : ''} |`);
  }
  const t = report.torch;
  if (t) {
    lines.push('', `## PyTorch eager ${t.torch} on ${t.device}, batch ${t.batch}, samples/s`, '');
    lines.push('| image fp32 | image fp16 | text fp32 | text fp16 | image fp16, uint8 pixels copied from the host |', '|---|---|---|---|---|');
    lines.push(`| ${fmt(t.image_fp32)} | ${fmt(t.image_fp16)} | ${fmt(t.text_fp32)} | ${fmt(t.text_fp16)} | ${fmt(t.image_fp16_uint8_from_host)} |`);
  }
  if (Object.keys(report.agreement).length) {
    lines.push('', '## Agreement on this device (max |difference| / max |value|)', '');
    for (const [k, v] of Object.entries(report.agreement)) lines.push(`- ${k}: ${JSON.stringify(v)}`);
  }
  const best = report.e2e.filter((e) => e.steadyRate).sort((a, b) => b.steadyRate - a.steadyRate)[0];
  if (best) {
    const bound = boundOf(best);
    lines.push('', '## Targets', '');
    lines.push(`- ≥ 90% of min(session rate, decode rate): best run ${best.name} at ${fmt(best.steadyRate)} samples/s after loading = ` +
      `${Number.isFinite(bound) ? fmt((100 * best.steadyRate) / bound) + '%' : '?'} of ${fmt(bound)} → ${Number.isFinite(bound) && best.steadyRate >= 0.9 * bound ? 'met' : 'NOT met'}`);
    lines.push(`- ≥ 10,000 samples/s end to end: ${fmt(best.steadyRate)} after loading, ${fmt(best.rate)} with loading → ${best.steadyRate >= 10_000 ? 'met (after loading)' : 'NOT met'}`);
  }
  lines.push('', `Total ${elapsed().toFixed(0)} s. Logs of every child process: logs/.`);
  return lines.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------ children

function cpuSeconds() {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
}

async function childMain(kind) {
  if (kind === 'decode') {
    const { decodeResized, decodeRgb, configureSharp, CLIP_MEAN, CLIP_STD } = await import('../dist/image/index.js');
    const { loadClipTokenizer } = await import('../dist/text/tokenizer.js');
    const { default: sharp } = await import('sharp');
    configureSharp();
    const jpegs = JSON.parse(readFileSync(join(WORK, 'jpegs.json'), 'utf8')).map((s) => Buffer.from(s, 'base64'));
    const size = MODEL === 'tiny' ? 32 : 224;
    const spec = { size, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' };
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const inFlight = 2 * threads;
    const rate = async (fn) => {
      for (let i = 0; i < 2 * inFlight; i++) await fn(jpegs[i % jpegs.length]);
      let n = 0;
      let next = 0;
      const s0 = performance.now();
      const c0 = cpuSeconds();
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (performance.now() - s0 < SECONDS * 1000) { await fn(jpegs[next++ % jpegs.length]); n++; }
      }));
      const wall = (performance.now() - s0) / 1000;
      return { rate: n / wall, cpuMsPerImage: ((cpuSeconds() - c0) * 1000) / n };
    };
    const a = await rate((b) => decodeResized(b, spec, { jpegDecoder: 'libvips' }));
    const b = await rate((x) => decodeRgb(x, { jpegDecoder: 'libvips' }));
    // The wasm JPEG decoder runs on the thread that calls it: as the pipeline does, on cores − 2 threads.
    const { Worker } = await import('node:worker_threads');
    const wasmThreads = Math.max(1, threads - 2);
    const perThread = await Promise.all(Array.from({ length: wasmThreads }, () => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { argv: ['--child', 'wasm-decode', '--work', WORK, '--seconds', String(SECONDS)] });
      w.once('message', resolve).once('error', reject);
    })));
    const wasm = { rate: perThread.reduce((x, r) => x + r.rate, 0), cpuMsPerImage: perThread.reduce((x, r) => x + r.msPerImage, 0) / perThread.length };
    const tok = await loadClipTokenizer(VOCAB);
    const captions = Array.from({ length: 2000 }, (_, i) => `a photo of ${WORDS[i % WORDS.length]} and ${WORDS[(i * 7) % WORDS.length]} number ${i} near the ${WORDS[(i * 13) % WORDS.length]}`);
    const s0 = performance.now();
    let n = 0;
    while (performance.now() - s0 < 1000) { tok.tokenize(captions[n % captions.length], 77, 0); n++; }
    console.log(JSON.stringify({ result: {
      decodeResized: a.rate, decodeResizedCpuMs: +a.cpuMsPerImage.toFixed(3), decodeOnlyLibvips: b.rate, decodeOnlyLibvipsCpuMs: +b.cpuMsPerImage.toFixed(3),
      decodeOnlyWasm: wasm.rate, decodeOnlyWasmMs: +wasm.cpuMsPerImage.toFixed(3), wasmThreads,
      decodeOnly: Math.max(b.rate, wasm.rate), tokenize: n / ((performance.now() - s0) / 1000), threads, inFlight, size,
    } }));
    return;
  }
  if (kind === 'wasm-decode') {
    // One decode thread of the 'decode' child: the wasm decoder for SECONDS on its own thread.
    const { parentPort } = await import('node:worker_threads');
    const { decodeRgb } = await import('../dist/image/index.js');
    const jpegs = JSON.parse(readFileSync(join(WORK, 'jpegs.json'), 'utf8')).map((s) => Buffer.from(s, 'base64'));
    for (let i = 0; i < 20; i++) await decodeRgb(jpegs[i % jpegs.length], { jpegDecoder: 'wasm' });
    let n = 0;
    const s0 = performance.now();
    while (performance.now() - s0 < SECONDS * 1000) await decodeRgb(jpegs[n++ % jpegs.length], { jpegDecoder: 'wasm' });
    const wall = (performance.now() - s0) / 1000;
    parentPort.postMessage({ rate: n / wall, msPerImage: (wall * 1000) / n });
    return;
  }
  if (kind === 'session') {
    const spec = JSON.parse(opt('spec'));
    const { loadBundle, openEncoders, createSession } = await import('../dist/model/index.js');
    const { exportGradGraph, GradSession } = await import('../dist/mimic/index.js');
    const { DEFAULTS } = await import('../dist/defaults.js');
    const proxy = await loadBundle(spec.proxy, { hash: false });
    const reference = await loadBundle(spec.reference, { hash: false });
    const l0 = performance.now();
    const sourceSize = spec.source ? { width: spec.source, height: spec.source } : undefined;
    const enc = await openEncoders(proxy, { device: spec.device, pixels: spec.pixels, precision: spec.precision, intraOpThreads: 0, interOpThreads: 1, ...(sourceSize ? { sourceSize } : {}) });
    const g = DEFAULTS.gradGraph.session;
    const grad = GradSession.wrap((await createSession(exportGradGraph(proxy.heads, reference.heads), {
      device: enc.provider === 'cuda' ? `cuda:${enc.deviceId ?? 0}` : 'cpu', intraOpThreads: g.intraOpNumThreads, interOpThreads: g.interOpNumThreads,
    })).session);
    const loadS = (performance.now() - l0) / 1000;
    const B = spec.batch;
    const S = proxy.manifest.image.size;
    const L = proxy.manifest.text.context_length;
    let x = 7;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 4294967296);
    const u8 = new Uint8Array(B * S * S * 3);
    for (let i = 0; i < u8.length; i++) u8[i] = Math.floor(rnd() * 256);
    const { normalizeTable, normalizeHwcToChw } = await import('../dist/image/index.js');
    const f32 = new Float32Array(B * 3 * S * S);
    const table = normalizeTable(proxy.manifest.image);
    for (let k = 0; k < B; k++) normalizeHwcToChw(u8.subarray(k * S * S * 3), S * S, table, f32, k * 3 * S * S);
    const frames = sourceSize ? new Uint8Array(B * spec.source * spec.source * 3) : null;
    if (frames) for (let i = 0; i < frames.length; i++) frames[i] = Math.floor(rnd() * 256);
    const pixels = frames ?? (spec.pixels === 'uint8' ? u8 : f32);
    const ids = new BigInt64Array(B * L);
    for (let i = 0; i < B; i++) {
      const n = 6 + (i % 20);
      ids[i * L] = 49406n;
      for (let j = 1; j <= n; j++) ids[i * L + j] = BigInt(300 + Math.floor(rnd() * 40000));
      ids[i * L + n + 1] = 49407n;
    }
    // Fresh copies each run, as the pipeline hands each batch its own buffers.
    const time = async (fn) => {
      for (let i = 0; i < 3; i++) await fn();
      let n = 0;
      const s0 = performance.now();
      while (performance.now() - s0 < spec.seconds * 1000) { await fn(); n++; }
      return (n * B) / ((performance.now() - s0) / 1000);
    };
    const image = await time(() => enc.imageFeatures(pixels.slice(), B));
    const text = await time(() => enc.textFeatures(ids.slice(), B));
    const full = await time(async () => {
      const a = await enc.imageFeatures(pixels.slice(), B);
      const t = await enc.textFeatures(ids.slice(), B);
      await grad.run(a, t, B);
    });
    const fi = await enc.imageFeatures(pixels.slice(), B);
    const ft = await enc.textFeatures(ids.slice(), B);
    const base = join(spec.work, `feat-${spec.precision}-${spec.pixels}-${B}${spec.source ? `-src${spec.source}` : ''}`);
    writeFileSync(`${base}.image.bin`, Buffer.from(fi.buffer, fi.byteOffset, fi.byteLength));
    writeFileSync(`${base}.text.bin`, Buffer.from(ft.buffer, ft.byteOffset, ft.byteLength));
    console.log(JSON.stringify({ result: { image, text, full, loadS: +loadS.toFixed(1), provider: enc.provider, textTrimmed: enc.textLength?.trimmed ?? null } }));
    await enc.release();
    return;
  }
  if (kind === 'compare') {
    const { readScoreFile } = await import('../dist/scores/reader.js');
    const cols = ['loss', 'clip_sim', 'grad_norm_both', 'mimic_proj_visual', 'mimic_proj_text', 'mimic_proj_both', 'mimic_cos_both'];
    const dirOf = (name) => join(WORK, `scores-${name}`, 'p');
    const result = {};
    const pairs = [['fp32-uint8', 'fp32-float32', 'uint8 vs float32 pixels (fp32), score files'], ['fp16-uint8', 'fp32-uint8', 'fp16 vs fp32 (uint8), score columns'],
      ['fp16-uint8-2threads', 'fp16-uint8', '2 inference threads vs 1 (fp16), score files'],
      ['fp16-uint8-prep8', 'fp16-uint8', '8 prep threads vs the default (fp16), score files'],
      ['fp16-uint8-src256', 'fp16-uint8', 'resize in the graph vs on the CPU (fp16), score columns'],
      ['fp16-uint8-src256', 'fp16-uint8-src256-libvips', 'wasm vs libvips JPEG decoder (--source-size), score files'],
      ['fp16-uint8-src256-2proc', 'fp16-uint8-src256', '2 processes vs 1 (--source-size), score files']];
    for (const [a, b, label] of pairs) {
      if (!existsSync(dirOf(a)) || !existsSync(dirOf(b))) continue;
      const files = readdirSync(dirOf(b)).filter((f) => f.endsWith('.arrow')).sort();
      let identical = 0;
      const worst = Object.fromEntries(cols.map((c) => [c, 0]));
      const scale = Object.fromEntries(cols.map((c) => [c, 0]));
      for (const f of files) {
        if (!existsSync(join(dirOf(a), f))) continue;
        const ba = readFileSync(join(dirOf(a), f));
        if (ba.equals(readFileSync(join(dirOf(b), f)))) { identical++; continue; }
        const [fa, fb] = await Promise.all([readScoreFile(join(dirOf(a), f), { columns: cols }), readScoreFile(join(dirOf(b), f), { columns: cols })]);
        for (const c of cols) {
          const va = fa.columns[c].values;
          const vb = fb.columns[c].values;
          for (let i = 0; i < va.length; i++) { worst[c] = Math.max(worst[c], Math.abs(va[i] - vb[i])); scale[c] = Math.max(scale[c], Math.abs(vb[i])); }
        }
      }
      result[label] = { files: files.length, identical, maxRel: Object.fromEntries(cols.map((c) => [c, scale[c] ? +(worst[c] / scale[c]).toExponential(2) : 0])) };
    }
    console.log(JSON.stringify({ result }));
    return;
  }
  throw new Error(`unknown child ${kind}`);
}

// ------------------------------------------------------------------------------------------------ main

async function main() {
  console.log(`bench-gpu: model ${MODEL}, device ${DEVICE}, ${SAMPLES} samples, batch ${BATCH}, deadline ${DEADLINE_S} s, work ${WORK}, report ${OUT}`);
  save();
  await step('env', 120, envStep);
  await step('bundle', 240, bundleStep);
  await step('shards', 90, shardsStep);
  await step('decode', 40, decodeStep);
  await step('session', 170, sessionStep);
  await step('e2e', 320, e2eStep);
  await step('torch', 90, torchStep);
  save();
  console.log('\n' + markdown());
  const failed = Object.entries(report.steps).filter(([, v]) => v.status !== 'ok');
  process.exitCode = failed.length ? 1 : 0;
}

if (opt('child')) await childMain(opt('child'));
else await main();
