/**
 * The pipeline cuts each batch's token ids after its last end token when the bundles' text encoders take a
 * dynamic length (src/model/text-length.ts). The same pool scored with bundles of the same weights whose text
 * length is fixed (every caption run at the full 77 tokens) must give the same scores within float rounding,
 * and rerunning gives the same bytes (a batch is always cut to the same length).
 *
 * Tolerance, as in score-run.test.ts: 1e-5 relative, with a floor of 1e-6 of the column's largest value for
 * scores that are near-complete cancellations of larger terms.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scorePool } from '../../src/pipeline/index.js';
import { loadBundle, openEncoders } from '../../src/model/index.js';
import { SCORE_COLUMNS } from '../../src/scores/schema.js';
import { tinyBundle } from '../helpers/bundles.js';
import { buildTar, tempDir, writeBytes } from '../helpers/shards.js';
import { bundles, entriesOf, goodSamples, readScores, scoreFileHashes } from './helpers.js';

const t = tempDir('mimic-score-textlen-');
afterAll(t.cleanup);

const B = 8;
const WORDS = 'a photo of the red dog cat on in with at street beach tree small large two three white black wooden view'.split(' ');

let dynamicRefs: { reference: string; proxy: string; proxy2: string };
let fixedRefs: { reference: string; proxy: string; proxy2: string };
const shardNames = ['a.tar', 'b.tar'];

beforeAll(async () => {
  dynamicRefs = await bundles();
  const reference = await tinyBundle({ seed: 1, textLength: 'fixed' });
  const [proxy, proxy2] = await Promise.all([
    tinyBundle({ from: reference, perturb: 0.05, seed: 2, textLength: 'fixed' }),
    tinyBundle({ from: reference, perturb: 0.1, seed: 3, textLength: 'fixed' }),
  ]);
  fixedRefs = { reference, proxy, proxy2 };
  // Captions of 1 to 40 words, one past the context (truncated, end token kept), so batches cut to many lengths.
  let s = 17;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296);
  for (const [k, name] of shardNames.entries()) {
    const samples = await goodSamples(19, { seed: 40 + k, prefix: `${name[0]}-` });
    samples.forEach((x, i) => {
      const n = k === 0 && i === 11 ? 90 : 1 + Math.floor(r() * (i % 3 === 0 ? 40 : 12));
      x.files.txt = Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ');
    });
    writeBytes(t.path('pool', name), await buildTar(entriesOf(samples)));
  }
}, 300_000);

const run = (refs: typeof dynamicRefs, out: string) => scorePool({
  shards: [t.path('pool/{a,b}.tar')],
  proxies: [`p1=${refs.proxy}`, `p2=${refs.proxy2}`],
  reference: refs.reference,
  out: t.path(out),
  batchSize: B,
  referenceClipScore: true,
  device: 'cpu',
});

describe('scoring with a dynamic text length', () => {
  it('the bundles are the same weights with a dynamic and a fixed text axis', async () => {
    for (const k of ['reference', 'proxy', 'proxy2'] as const) {
      expect(readFileSync(join(fixedRefs[k], 'heads.safetensors'))).toEqual(readFileSync(join(dynamicRefs[k], 'heads.safetensors')));
      const [d, f] = await Promise.all([loadBundle(dynamicRefs[k], { hash: false }), loadBundle(fixedRefs[k], { hash: false })]);
      expect(d.signatures.textual.inputs[0]!.shape).toEqual(['batch', 'sequence']);
      expect(f.signatures.textual.inputs[0]!.shape).toEqual(['batch', 77]);
    }
    // what the inference thread opens: the dynamic bundles' ids are cut
    const enc = await openEncoders(await loadBundle(dynamicRefs.proxy, { hash: false }), { device: 'cpu' });
    expect(enc.textLength.trimmed).toBe(true);
    await enc.release();
  });

  it('gives the scores of the full-length run within float rounding, and the same bytes when rerun', async () => {
    await run(dynamicRefs, 'dynamic');
    await run(fixedRefs, 'fixed');
    const mismatches: string[] = [];
    let compared = 0;
    let worst = 0;
    for (const ckpt of ['p1', 'p2']) {
      for (const shard of shardNames) {
        const d = readScores(join(t.path('dynamic'), ckpt, `${shard}.arrow`));
        const f = readScores(join(t.path('fixed'), ckpt, `${shard}.arrow`));
        expect(d.length).toBe(19);
        expect(d.col('status')).toEqual(f.col('status'));
        for (const c of SCORE_COLUMNS.filter((c) => c.type === 'float32')) {
          const got = d.num(c.name);
          const want = f.num(c.name);
          const largest = Math.max(...want.map((v) => Math.abs(v ?? 0)));
          want.forEach((e, i) => {
            if (e === null) {
              expect(got[i]).toBeNull();
              return;
            }
            const err = Math.abs(got[i]! - e);
            if (e !== 0) worst = Math.max(worst, err / Math.abs(e));
            compared++;
            if (!(err <= 1e-5 * Math.abs(e) + 1e-6 * largest)) mismatches.push(`${ckpt}/${shard} row ${i} ${c.name} = ${got[i]}, full length ${e}`);
          });
        }
      }
    }
    expect(mismatches, `worst relative difference ${worst}`).toEqual([]);
    expect(compared).toBeGreaterThan(2 * 2 * 19 * 10);
    await run(dynamicRefs, 'again');
    expect(scoreFileHashes(t.path('again'))).toEqual(scoreFileHashes(t.path('dynamic')));
  }, 120_000);
});
