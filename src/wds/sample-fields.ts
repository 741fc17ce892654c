/**
 * The text members of a sample as the later stages read them: the caption (strict UTF-8, as Python's
 * webdataset decodes it, a BOM kept as Python keeps it) and the json metadata (an object, or why not).
 */
import { errorMessage } from '../errors.js';
import type { Sample } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type CaptionResult =
  | { ok: true; caption: string }
  | { ok: false; status: 'no_caption' | 'bad_caption'; message: string };

export function sampleCaption(sample: Sample, captionKey: string): CaptionResult {
  const bytes = sample.files.get(captionKey);
  if (bytes === undefined) return { ok: false, status: 'no_caption', message: `the sample has no .${captionKey} member` };
  try {
    return { ok: true, caption: utf8.decode(bytes) };
  } catch {
    return { ok: false, status: 'bad_caption', message: `the .${captionKey} member is not valid UTF-8` };
  }
}

export type JsonResult =
  | { ok: true; json: Record<string, unknown> | null }
  | { ok: false; message: string };

/** The json member: null when absent, an error message when it is not a JSON object. */
export function sampleJson(sample: Sample, metadataKey: string): JsonResult {
  const bytes = sample.files.get(metadataKey);
  if (bytes === undefined) return { ok: true, json: null };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, message: `the .${metadataKey} member is not valid UTF-8` };
  }
  // Python's json.loads(bytes) accepts a UTF-8 BOM; JSON.parse does not.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, message: `the .${metadataKey} member is not JSON (${errorMessage(e)})` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, message: `the .${metadataKey} member is JSON but not an object` };
  }
  return { ok: true, json: value as Record<string, unknown> };
}

/** The json's `uid` when it is a string (DataComp's are 32 hex digits). */
export function jsonUid(json: Record<string, unknown> | null): string | null {
  return json !== null && typeof json.uid === 'string' ? json.uid : null;
}
