/**
 * `mimic check`: is a bundle sound (it reproduces its source model), and is a proxy/reference pair usable for
 * mimic scores (compatible, and sharing a lineage)? One report for the CLI table and for --json.
 */
import { MimicError } from '../errors.js';
import { loadBundle, type Bundle } from './bundle.js';
import { checkPair, type PairCheck } from './lineage.js';
import type { PoolFeatureResult } from './pool-features.js';
import type { SessionOptions } from './session.js';
import { verifyBundle, type VerifyReport } from './verify.js';

export interface CheckOptions extends SessionOptions {
  proxy: string;
  reference?: string;
  /** Run each bundle's check inputs through onnxruntime (default true). */
  verify?: boolean;
  /**
   * Feature agreement on pool samples, computed by the caller (it needs shards, decoding and tokenizing);
   * receives both loaded bundles.
   */
  features?: (proxy: Bundle, reference: Bundle) => Promise<PoolFeatureResult>;
}

export interface CheckReport {
  bundles: Array<{ role: 'proxy' | 'reference'; dir: string; name: string; hash: string; verify?: VerifyReport; verifySkipped?: string }>;
  pair?: PairCheck;
  /** Pool samples the features were compared on, and those passed over (no image or caption, undecodable). */
  pool?: { used: number; skipped: number; skippedExamples: string[] };
  /** Everything that would make mimic scores wrong or meaningless. */
  problems: string[];
}

export async function checkBundles(opts: CheckOptions): Promise<CheckReport> {
  const report: CheckReport = { bundles: [], problems: [] };
  const loaded: Bundle[] = [];
  for (const [role, dir] of [['proxy', opts.proxy], ['reference', opts.reference]] as const) {
    if (!dir) continue;
    const bundle = await loadBundle(dir);
    loaded.push(bundle);
    const entry: CheckReport['bundles'][number] = { role, dir: bundle.dir, name: bundle.manifest.name, hash: bundle.hash };
    if (opts.verify === false) entry.verifySkipped = 'not requested';
    else if (!bundle.paths.check) entry.verifySkipped = 'the bundle has no check file';
    else {
      entry.verify = await verifyBundle(bundle, opts);
      if (!entry.verify.ok) {
        report.problems.push(`${role} ${bundle.dir} does not reproduce its source model (max relative error ` +
          `${Math.max(...Object.values(entry.verify.errors)).toExponential(2)} > ${entry.verify.rtol})`);
      }
    }
    report.bundles.push(entry);
  }
  if (loaded.length === 2) {
    const [proxy, reference] = loaded as [Bundle, Bundle];
    const pool = opts.features ? await opts.features(proxy, reference) : undefined;
    report.pair = await checkPair(proxy, reference, pool?.agreement);
    if (pool) report.pool = { used: pool.used, skipped: pool.skipped, skippedExamples: pool.skippedReasons };
    if (report.pair.verdict.level !== 'shares-lineage') report.problems.push(report.pair.verdict.message);
  } else if (opts.features) {
    throw new MimicError('E_USAGE', 'comparing features on shards needs both --proxy and --reference');
  }
  return report;
}

const fmt = (x: number, digits = 4): string => (Number.isFinite(x) ? x.toPrecision(digits) : String(x));

export function formatCheckReport(r: CheckReport): string {
  const out: string[] = [];
  for (const b of r.bundles) {
    out.push(`${b.role}: ${b.name} (${b.dir})`);
    if (b.verify) {
      const e = b.verify.errors;
      out.push(`  onnxruntime (${b.verify.provider}) vs source model on ${b.verify.samples} check inputs: ` +
        `${b.verify.ok ? 'ok' : 'MISMATCH'} — max relative error image features ${e.imageFeatures.toExponential(1)}, ` +
        `text features ${e.textFeatures.toExponential(1)}, embeddings ${Math.max(e.imageEmbeds, e.textEmbeds).toExponential(1)} ` +
        `(tolerance ${b.verify.rtol})`);
    } else if (b.verifySkipped) {
      out.push(`  not verified: ${b.verifySkipped}`);
    }
  }
  const p = r.pair;
  if (p) {
    out.push(`heads: visual_projection [${p.heads.dv},${p.heads.p}], text_projection [${p.heads.dt},${p.heads.p}] in both; ` +
      `logit scale exp(s) proxy ${fmt(Math.exp(p.logitScale.proxy))}, reference ${fmt(Math.exp(p.logitScale.reference))}`);
    const rows = [['layer', 'shape', '‖W‖', '‖W_ref‖', '‖W_ref−W‖', '‖W_ref−W‖/‖W‖', 'cos(W,W_ref)']];
    for (const l of p.layers) {
      rows.push([l.layer, `${l.shape[0]}×${l.shape[1]}`, fmt(l.normW), fmt(l.normRef), fmt(l.normD), fmt(l.relDistance), fmt(l.cosine)]);
    }
    if (p.features) {
      rows.push(['', '', '', '', '', '', '']);
      rows.push(['features', 'samples', 'linear CKA', 'alignment', '', '', '']);
      for (const f of p.features) rows.push([f.tower, String(f.samples), fmt(f.cka), fmt(f.alignment), '', '', '']);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => [...row[i]!].length)));
    for (const row of rows) out.push('  ' + row.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join('  ').trimEnd());
    if (r.pool) {
      out.push(`pool samples: ${r.pool.used} compared` + (r.pool.skipped ? `, ${r.pool.skipped} passed over (e.g. ${r.pool.skippedExamples[0]})` : ''));
    }
    out.push(`verdict: ${p.verdict.message}`);
  }
  if (r.problems.length === 0) out.push('no problems found');
  return out.join('\n') + '\n';
}
