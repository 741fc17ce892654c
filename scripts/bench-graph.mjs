#!/usr/bin/env node
// Time and peak memory of the per-sample-gradient graph against the encoders (issue 3's performance target:
// the gradient math under 10% of the encoder time at B = 256).
//
// Each measurement runs in its own child process, so peak memory (peak RSS above the level after the session is
// created) belongs to that session alone. Reports wall time and CPU time per batch: the build machines are
// shared, and CPU-seconds are the steadier number there.
//
// Usage: npm run build && node scripts/bench-graph.mjs [--bundle DIR] [--reference DIR] [--batches 64,256,1024]
//          [--encoder-batches 64,256] [--precision float64,float32] [--repeats 3] [--threads 2]
//   --bundle DIR     a mimic-clip/1 bundle (e.g. `scripts/export_bundle.py --config vit-b-32 --out DIR`): its heads
//                    and encoders are measured. Without it, random ViT-B/32-sized heads (Dv 768, Dt 512, P 512) and
//                    the gradient graph alone.
//   --reference DIR  reference heads (default: the proxy's heads plus 5% noise; the cost does not depend on them).
//   --fused          also time the fused model (encoders + gradient graph in one file) at the encoder batches.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const list = (s) => s.split(',').filter(Boolean);

if (opt('child')) await child(JSON.parse(opt('child')));
else await main();

async function main() {
  const { buildGradGraph } = await import('../dist/mimic/index.js');
  const bundleDir = opt('bundle');
  const batches = list(opt('batches', '64,256,1024')).map(Number);
  const encoderBatches = list(opt('encoder-batches', '64,256')).map(Number);
  const precisions = list(opt('precision', 'float64,float32'));
  const repeats = Number(opt('repeats', '3'));
  const threads = Number(opt('threads', '2'));

  let heads;
  let encoders;
  if (bundleDir) {
    const { loadBundle } = await import('../dist/model/bundle.js');
    const proxy = await loadBundle(bundleDir, { hash: false });
    const refDir = opt('reference');
    const ref = refDir ? (await loadBundle(refDir, { hash: false })).heads : perturbed(proxy.heads);
    heads = { ...proxy.heads, refVisualProjection: ref.visualProjection, refTextProjection: ref.textProjection };
    encoders = { visual: proxy.paths.visual, textual: proxy.paths.textual, size: proxy.manifest.image.size, context: proxy.manifest.text.context_length, proxy };
  } else {
    const p = { dv: 768, dt: 512, p: 512 };
    const rnd = normal(7);
    const mat = (n, scale) => Float32Array.from({ length: n }, () => scale * rnd());
    const proxyHeads = { ...p, visualProjection: mat(p.dv * p.p, p.dv ** -0.5), textProjection: mat(p.dt * p.p, p.dt ** -0.5), logitScale: Math.log(1 / 0.07) };
    const ref = perturbed(proxyHeads);
    heads = { ...proxyHeads, refVisualProjection: ref.visualProjection, refTextProjection: ref.textProjection };
  }

  const tmp = mkdtempSync(join(os.tmpdir(), 'bench-graph-'));
  const results = [];
  try {
    for (const precision of precisions) {
      const file = join(tmp, `grad-${precision}.onnx`);
      writeFileSync(file, buildGradGraph(heads, { precision }));
      for (const b of batches) {
        results.push({ part: `grad ${precision}`, b, ...spawnChild({ kind: 'grad', file, b, dv: heads.dv, dt: heads.dt, repeats, threads }) });
      }
    }
    if (encoders) {
      for (const b of encoderBatches) {
        results.push({ part: 'visual', b, ...spawnChild({ kind: 'visual', file: encoders.visual, b, size: encoders.size, repeats: 1, threads }) });
        results.push({ part: 'textual', b, ...spawnChild({ kind: 'textual', file: encoders.textual, b, context: encoders.context, repeats: 1, threads }) });
      }
      if (argv.includes('--fused')) {
        const { fuseBundleGraph } = await import('../dist/mimic/index.js');
        const file = join(tmp, 'fused.onnx');
        const t0 = performance.now();
        writeFileSync(file, fuseBundleGraph(readFileSync(encoders.visual), readFileSync(encoders.textual), heads));
        console.log(`fused model built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        for (const b of encoderBatches) {
          results.push({ part: 'fused', b, ...spawnChild({ kind: 'fused', file, b, size: encoders.size, context: encoders.context, repeats: 1, threads }) });
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  const cpu = os.cpus();
  console.log(`machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores visible, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`onnxruntime-node CPU EP, intraOpNumThreads ${threads}, interOpNumThreads 1, no spinning; ${bundleDir ? `bundle ${bundleDir}` : 'random heads Dv 768, Dt 512, P 512 (no encoders)'}`);
  console.log('part             B      wall ms/batch   CPU ms/batch   samples/s (wall)   session MB   run peak MB');
  for (const r of results) {
    console.log(
      `${r.part.padEnd(16)} ${String(r.b).padStart(5)}  ${r.wallMs.toFixed(1).padStart(14)}  ${r.cpuMs.toFixed(1).padStart(13)}  ` +
        `${((1000 * r.b) / r.wallMs).toFixed(1).padStart(17)}  ${r.sessionMb.toFixed(0).padStart(11)}  ${r.peakMb.toFixed(0).padStart(12)}`,
    );
  }
  if (encoders) {
    for (const b of encoderBatches) {
      const enc = results.filter((r) => r.b === b && (r.part === 'visual' || r.part === 'textual'));
      const encWall = enc.reduce((s, r) => s + r.wallMs, 0);
      const encCpu = enc.reduce((s, r) => s + r.cpuMs, 0);
      for (const g of results.filter((r) => r.b === b && r.part.startsWith('grad'))) {
        console.log(`B=${b}: ${g.part} costs ${((100 * g.wallMs) / encWall).toFixed(2)}% of the encoders' wall time, ${((100 * g.cpuMs) / encCpu).toFixed(2)}% of their CPU time`);
      }
    }
  }
}

function spawnChild(spec) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`child ${spec.kind} B=${spec.b} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function child(spec) {
  const ort = await import('onnxruntime-node');
  const mb = (kb) => kb / 1024;
  const rss0 = peakRssKb();
  const session = await ort.InferenceSession.create(spec.file, {
    intraOpNumThreads: spec.threads,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const rnd = normal(spec.b);
  const floats = (n) => Float32Array.from({ length: n }, () => rnd());
  let feeds;
  if (spec.kind === 'grad') {
    feeds = {
      image_features: new ort.Tensor('float32', floats(spec.b * spec.dv), [spec.b, spec.dv]),
      text_features: new ort.Tensor('float32', floats(spec.b * spec.dt), [spec.b, spec.dt]),
    };
  } else if (spec.kind === 'visual') {
    feeds = { pixel_values: new ort.Tensor('float32', floats(spec.b * 3 * spec.size * spec.size), [spec.b, 3, spec.size, spec.size]) };
  }
  if (spec.kind === 'textual' || spec.kind === 'fused') {
    const ids = new BigInt64Array(spec.b * spec.context);
    for (let i = 0; i < spec.b; i++) {
      const len = 5 + (i % 40);
      ids[i * spec.context] = 49406n;
      for (let j = 1; j < len; j++) ids[i * spec.context + j] = BigInt(1 + ((i * 131 + j * 17) % 49000));
      ids[i * spec.context + len] = 49407n;
    }
    feeds = { input_ids: new ort.Tensor('int64', ids, [spec.b, spec.context]) };
    if (spec.kind === 'fused') {
      feeds.pixel_values = new ort.Tensor('float32', floats(spec.b * 3 * spec.size * spec.size), [spec.b, 3, spec.size, spec.size]);
    }
  }
  const rssSession = peakRssKb();
  await session.run(feeds); // warm-up: allocations and kernel selection
  const wall = [];
  const cpu = [];
  for (let i = 0; i < spec.repeats; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await session.run(feeds);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(
    JSON.stringify({
      wallMs: median(wall),
      cpuMs: median(cpu),
      sessionMb: mb(rssSession - rss0),
      peakMb: mb(peakRssKb() - rssSession),
    }),
  );
}

/**
 * This process's peak resident set (kB). /proc's VmHWM belongs to the process's own address space; getrusage's
 * maxRSS would carry over the parent's peak through fork and exec, and the parent holds whole models.
 */
function peakRssKb() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

function perturbed(h) {
  const rnd = normal(11);
  const noisy = (a) => Float32Array.from(a, (v) => v + 0.05 * Math.abs(v) * rnd());
  return { visualProjection: noisy(h.visualProjection), textProjection: noisy(h.textProjection) };
}

function normal(seed) {
  let s = seed >>> 0 || 1;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}
