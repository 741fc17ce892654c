/**
 * Feature agreement of a proxy and a reference on pool samples: the first N usable samples of the shards are
 * decoded and tokenized once (both bundles share preprocessing, which checkPair's assertCompatible guarantees),
 * run through both models' encoders, and compared per tower (linear CKA and feature alignment).
 */
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage } from '../errors.js';
import { preprocessInto } from '../image/index.js';
import { loadClipTokenizer, type ClipTokenizer } from '../text/tokenizer.js';
import { log } from '../log.js';
import { expandShardSpecs, openShard } from '../wds/index.js';
import type { Bundle } from './bundle.js';
import { openEncoders, type Encoders } from './encoders.js';
import { assertCompatible, featureAgreement, type FeatureAgreement } from './lineage.js';
import { resolveDevice, type SessionOptions } from './session.js';

export interface PoolFeatureOptions extends SessionOptions {
  /** Usable samples to compare on (default DEFAULTS.model.checkSamples). */
  samples?: number;
  batchSize?: number;
  /** The bundle's tokenizer (both bundles share it); loaded from the proxy's vocabulary when absent. */
  tokenizer?: ClipTokenizer;
  imageKeys?: readonly string[];
  captionKey?: string;
  allowPipe?: boolean;
  onProgress?: (encoded: number) => void;
}

export interface PoolFeatureResult {
  agreement: FeatureAgreement[];
  /** Samples encoded by both models. */
  used: number;
  /** Samples passed over (no image or caption, undecodable image), with the first few reasons. */
  skipped: number;
  skippedReasons: string[];
}

export async function poolFeatureAgreement(
  proxy: Bundle, reference: Bundle, shards: string[], opts: PoolFeatureOptions,
): Promise<PoolFeatureResult> {
  assertCompatible(proxy, reference);
  const want = opts.samples ?? DEFAULTS.model.checkSamples;
  const batch = Math.min(opts.batchSize ?? DEFAULTS.model.checkBatchSize, want);
  const imageKeys = opts.imageKeys ?? DEFAULTS.wds.imageKeys;
  const captionKey = opts.captionKey ?? DEFAULTS.wds.captionKey;
  const urls = await expandShardSpecs(shards);
  const { dv, dt } = proxy.heads;
  const s = proxy.manifest.image.size;
  const L = proxy.manifest.text.context_length;
  const tokenizer = opts.tokenizer ?? await loadClipTokenizer(proxy.paths.vocab);
  const padId = proxy.manifest.text.pad_id;
  const target = await resolveDevice(opts.device);
  const device = target.provider === 'cuda' ? `cuda:${target.deviceId ?? 0}` : 'cpu';
  const encP = await openEncoders(proxy, { ...opts, device });
  let encR: Encoders;
  try {
    encR = await openEncoders(reference, { ...opts, device });
  } catch (e) {
    await encP.release();
    throw e;
  }

  const feats = {
    proxyImage: new Float32Array(want * dv),
    refImage: new Float32Array(want * dv),
    proxyText: new Float32Array(want * dt),
    refText: new Float32Array(want * dt),
  };
  const pixels = new Float32Array(batch * 3 * s * s);
  const ids = new BigInt64Array(batch * L);
  let inBatch = 0;
  let done = 0;
  let skipped = 0;
  const skippedReasons: string[] = [];
  const skip = (where: string, why: string) => {
    skipped++;
    if (skippedReasons.length < 5) skippedReasons.push(`${where}: ${why}`);
  };
  const flush = async () => {
    if (inBatch === 0) return;
    const px = inBatch === batch ? pixels : pixels.subarray(0, inBatch * 3 * s * s);
    const tk = inBatch === batch ? ids : ids.subarray(0, inBatch * L);
    feats.proxyImage.set(await encP.imageFeatures(px, inBatch), done * dv);
    feats.refImage.set(await encR.imageFeatures(px, inBatch), done * dv);
    feats.proxyText.set(await encP.textFeatures(tk, inBatch), done * dt);
    feats.refText.set(await encR.textFeatures(tk, inBatch), done * dt);
    done += inBatch;
    inBatch = 0;
    opts.onProgress?.(done);
  };

  try {
    outer: for (const url of urls) {
      const shard = await openShard(url, {
        ...(opts.allowPipe ? { allowPipe: true } : {}),
        wantExtensions: (ext) => ext === captionKey || imageKeys.includes(ext),
      });
      try {
        for await (const sample of shard.samples) {
          const where = `${url} row ${sample.row} (${sample.key})`;
          const imageExt = imageKeys.find((k) => sample.files.has(k));
          const caption = sample.files.get(captionKey);
          if (!imageExt) { skip(where, 'no image'); continue; }
          if (!caption) { skip(where, 'no caption'); continue; }
          try {
            await preprocessInto(sample.files.get(imageExt)!, proxy.manifest.image, pixels, inBatch * 3 * s * s);
          } catch (e) {
            skip(where, errorMessage(e));
            continue;
          }
          tokenizer.tokenizeInto(caption.toString('utf8'), L, ids, inBatch * L, padId);
          inBatch++;
          if (inBatch === batch || done + inBatch === want) await flush();
          if (done === want) break outer;
        }
      } finally {
        shard.close();
      }
    }
    await flush();
  } finally {
    await encP.release();
    await encR.release();
  }
  if (done < 2) {
    throw new MimicError('E_USAGE', `only ${done} usable samples in ${shards.join(' ')}: comparing features needs at least 2`, {
      hint: skippedReasons.length ? `skipped: ${skippedReasons.join('; ')}` : 'give more shards',
    });
  }
  if (skipped) log().info({ skipped, examples: skippedReasons }, 'check: samples passed over for the feature comparison');
  return {
    agreement: [
      featureAgreement('visual', feats.proxyImage.subarray(0, done * dv), feats.refImage.subarray(0, done * dv), done, dv),
      featureAgreement('text', feats.proxyText.subarray(0, done * dt), feats.refText.subarray(0, done * dt), done, dt),
    ],
    used: done,
    skipped,
    skippedReasons,
  };
}
