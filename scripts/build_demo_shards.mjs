#!/usr/bin/env node
// Builds the demo dataset (src/demo/dataset.ts) from the emoji npm packages: a clean reference set and a noisy
// pool as WebDataset shards, plus truth.json (every pool row's label: clean | swapped | corrupted).
// Needs the project built (npm run build) and the emoji devDependencies installed (npm ci).
// Usage: node scripts/build_demo_shards.mjs --out DIR [--noise 0.3] [--swap-share 0.5] [--seed 0] [--limit N]
//        [--samples-per-shard 1000] [--reference-only 0.5] [--image-size 64] [--format jpg|png] [--pool-only] [--force]
import { parseArgs } from 'node:util';
import { buildDemoDataset } from '../dist/demo/index.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    noise: { type: 'string', default: '0.3' },
    'swap-share': { type: 'string', default: '0.5' },
    seed: { type: 'string', default: '0' },
    limit: { type: 'string' },
    'samples-per-shard': { type: 'string', default: '1000' },
    'reference-only': { type: 'string', default: '0.5' },
    'image-size': { type: 'string', default: '64' },
    format: { type: 'string', default: 'jpg' },
    force: { type: 'boolean', default: false },
    'pool-only': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help || !values.out) {
  console.log('usage: node scripts/build_demo_shards.mjs --out DIR [--noise 0.3] [--swap-share 0.5] [--seed 0] ' +
    '[--limit N] [--samples-per-shard 1000] [--reference-only 0.5] [--image-size 64] [--format jpg|png] [--pool-only] [--force]');
  process.exit(values.help ? 0 : 2);
}
const t0 = performance.now();
try {
  const ds = await buildDemoDataset({
    out: values.out,
    noise: Number(values.noise),
    swapShare: Number(values['swap-share']),
    seed: Number(values.seed),
    ...(values.limit ? { limit: Number(values.limit) } : {}),
    samplesPerShard: Number(values['samples-per-shard']),
    referenceOnly: Number(values['reference-only']),
    imageSize: Number(values['image-size']),
    imageFormat: values.format,
    force: values.force,
    writeReference: !values['pool-only'],
  });
  const c = ds.truth.counts;
  const t = ds.truth;
  const reference = values['pool-only']
    ? 'reference not written (--pool-only)'
    : `reference ${c.reference} samples in ${ds.referenceShards.length} shards (${t.referenceStyles.join(', ')}, and ` +
      `every style for ${Math.round(100 * t.referenceOnly)}% of the emoji, kept out of the pool)`;
  console.log(`wrote ${values.out}: ${t.emoji} emoji; ${reference}; pool ${c.pool} samples in ` +
    `${ds.poolShards.length} shards (${ds.truth.poolStyles.join(', ')}): ${c.clean} clean, ${c.swapped} swapped, ` +
    `${c.corrupted} corrupted; truth in ${ds.truthFile} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
} catch (e) {
  console.error(`build_demo_shards: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}`);
  process.exit(2);
}
