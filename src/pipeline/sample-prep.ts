/**
 * One sample, from tar members to what a batch needs: its row facts (key, uid, status) and, when it can be
 * scored, its decoded S×S×3 pixels and token ids. Every failure becomes a status on the row, never an
 * exception: the run goes on and the score file still has the row.
 */
import { decodeForFrame, decodeResized, imageErrorKind, type DecodeOptions, type ImageSpec } from '../image/index.js';
import type { ClipTokenizer } from '../text/tokenizer.js';
import { jsonUid, sampleCaption, sampleJson, type Sample } from '../wds/index.js';
import type { UidSet } from './uid-set.js';

export interface RowFacts {
  row: number;
  key: string;
  uid: string | null;
  status: string;
  error: string | null;
}

export interface PreparedSample extends RowFacts {
  /** S·S·3 uint8 HWC, when status is ok (with a source size: W·H·3 as decoded, unless cpuResized). */
  pixels?: Buffer;
  /** With a source size: the image had another size and was resized to S×S on the CPU. */
  cpuResized?: boolean;
  /** Token ids with the specials, padded to the context length, when status is ok. */
  ids?: Int32Array;
  /**
   * From a prep thread: call once `pixels` and `ids` have been copied (they are views into a buffer that then goes
   * back to the thread to be filled again; see prep-protocol). Not calling it only costs an allocation.
   */
  release?: () => void;
}

export interface PrepContext {
  imageKeys: readonly string[];
  captionKey: string;
  metadataKey: string;
  image: ImageSpec;
  decode: DecodeOptions;
  tokenizer: ClipTokenizer;
  contextLength: number;
  padId: number;
  uids: UidSet | null;
  /**
   * Images of this size are only decoded (the image encoder resizes them in its graph); others are resized to
   * S×S here as usual. Unset: every image is resized here.
   */
  sourceSize?: { width: number; height: number };
}

/** The extensions a scoring run reads; other members' bytes are skipped by the tar reader. */
export function wantedExtensions(ctx: Pick<PrepContext, 'imageKeys' | 'captionKey' | 'metadataKey'>): (ext: string) => boolean {
  const want = new Set([...ctx.imageKeys, ctx.captionKey, ctx.metadataKey]);
  return (ext) => want.has(ext);
}

export async function prepareSample(sample: Sample, ctx: PrepContext): Promise<PreparedSample> {
  const json = sampleJson(sample, ctx.metadataKey);
  // A json that does not parse costs the sample its uid, not its score: the pair itself is intact.
  const facts: RowFacts = { row: sample.row, key: sample.key, uid: json.ok ? jsonUid(json.json) : null, status: 'ok', error: null };
  const fail = (status: string, error: string): PreparedSample => ({ ...facts, status, error });

  if (sample.problem) return fail(sample.problem.status, sample.problem.message);
  if (ctx.uids && !ctx.uids.has(facts.uid)) return fail('skipped', 'not in --uids');

  const imageExt = ctx.imageKeys.find((k) => sample.files.has(k));
  if (imageExt === undefined) return fail('no_image', `the sample has none of the image members ${ctx.imageKeys.map((k) => '.' + k).join(' ')}`);
  const caption = sampleCaption(sample, ctx.captionKey);
  if (!caption.ok) return fail(caption.status, caption.message);
  if (caption.caption.trim() === '') return fail('bad_caption', 'the caption is empty');

  let pixels: Buffer;
  let cpuResized: boolean | undefined;
  try {
    const bytes = sample.files.get(imageExt)!;
    const opts = { ...ctx.decode, file: `${sample.shard}:${sample.key}.${imageExt}` };
    if (ctx.sourceSize) {
      ({ pixels, resized: cpuResized } = await decodeForFrame(bytes, ctx.image, ctx.sourceSize, opts));
    } else {
      ({ pixels } = await decodeResized(bytes, ctx.image, opts));
    }
  } catch (e) {
    const kind = imageErrorKind(e);
    if (kind === undefined) throw e;
    return fail(kind, (e as Error).message);
  }
  const ids = ctx.tokenizer.tokenize(caption.caption, ctx.contextLength, ctx.padId);
  return { ...facts, pixels, ids, ...(cpuResized === undefined ? {} : { cpuResized }) };
}
