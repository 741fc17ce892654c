import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/model/bundle.js';
import { openEncoders } from '../../src/model/encoders.js';
import { checkPair } from '../../src/model/lineage.js';
import { verifyBundle } from '../../src/model/verify.js';
import { loadClipTokenizer } from '../../src/text/tokenizer.js';

const MODELS = new URL('../../models/', import.meta.url).pathname;
const REFERENCE = join(MODELS, 'demo-reference');
const PROXIES = readdirSync(MODELS).filter((d) => d.startsWith('demo-proxy-')).sort().map((d) => join(MODELS, d));

describe('committed demo bundles', () => {
  it('has a reference and at least two proxy checkpoints', () => {
    expect(PROXIES.length).toBeGreaterThanOrEqual(2);
  });

  for (const dir of [REFERENCE, ...PROXIES]) {
    it(`${dir.slice(MODELS.length)} loads and reproduces the PyTorch model it was exported from`, async () => {
      const bundle = await loadBundle(dir);
      expect(bundle.manifest.format).toBe('mimic-clip/1');
      expect(bundle.manifest.text.tokenizer).toBe('clip-bpe');
      const report = await verifyBundle(bundle, { device: 'cpu', intraOpThreads: 1 });
      expect(report.ok).toBe(true);
      for (const e of Object.values(report.errors)) expect(e).toBeLessThanOrEqual(report.rtol);
    });
  }

  it('pairs every proxy with the reference (same shapes and preprocessing, a shared lineage)', async () => {
    const reference = await loadBundle(REFERENCE);
    for (const dir of PROXIES) {
      const pair = await checkPair(await loadBundle(dir), reference);
      expect(pair.heads).toEqual({ dv: reference.heads.dv, dt: reference.heads.dt, p: reference.heads.p });
      expect(['shares-lineage', 'weak']).toContain(pair.verdict.level);
      for (const l of pair.layers) expect(l.normD).toBeGreaterThan(0);
    }
  });

  it('maps tokens outside the demo vocabulary to one shared row (the compact embedding table)', async () => {
    const bundle = await loadBundle(REFERENCE);
    const tok = await loadClipTokenizer(bundle.paths.vocab);
    const L = bundle.manifest.text.context_length;
    const enc = await openEncoders(bundle, { device: 'cpu', intraOpThreads: 1 });
    try {
      // Two words the emoji captions never use, of one BPE token each, then a word they do use.
      const texts = ['democracy', 'parliament', 'weather'];
      for (const t of texts) expect(tok.encode(t).length).toBe(1);
      const ids = new BigInt64Array(texts.length * L);
      texts.forEach((t, i) => tok.tokenizeInto(t, L, ids, i * L, bundle.manifest.text.pad_id));
      const f = await enc.textFeatures(ids, texts.length);
      const dt = bundle.heads.dt;
      const row = (i: number) => Array.from(f.subarray(i * dt, (i + 1) * dt));
      expect(row(0)).toEqual(row(1));
      expect(row(2)).not.toEqual(row(0));
    } finally {
      await enc.release();
    }
  });
});
