/**
 * A sample-preparation thread: decodes images and tokenizes captions for the scoring loop, so that the main
 * thread (reading tar bytes, batching, writing score files) does not pay sharp's per-call cost (~0.25 ms of
 * synchronous work a call, measured) nor the tokenizer's: at GPU rates (10k samples/s) one thread cannot do both.
 * Each item is prepared by the same prepareSample as on the main thread, so the results are identical.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { relayLogsTo } from '../log.js';
import { configureSharp } from '../image/index.js';
import { loadClipTokenizer } from '../text/tokenizer.js';
import type { Sample } from '../wds/index.js';
import { pack, Spares, type PrepInit, type PrepParentMessage, type PrepWorkerMessage, type WirePreparedSample } from './prep-protocol.js';
import { prepareSample, type PrepContext } from './sample-prep.js';

function post(m: PrepWorkerMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

async function start(init: PrepInit): Promise<void> {
  relayLogsTo(parentPort!, init.logLevel ?? 'info');
  configureSharp();
  const ctx: PrepContext = {
    imageKeys: init.imageKeys,
    captionKey: init.captionKey,
    metadataKey: init.metadataKey,
    image: init.image,
    decode: init.decode,
    tokenizer: await loadClipTokenizer(init.vocab),
    contextLength: init.contextLength,
    padId: init.padId,
    // --uids is applied by the scoring loop before a sample is sent here.
    uids: null,
    ...(init.sourceSize ? { sourceSize: init.sourceSize } : {}),
  };
  const spares = new Spares();
  parentPort!.on('message', (m: PrepParentMessage) => {
    if (m.type === 'close') {
      parentPort!.close();
      return;
    }
    for (const b of m.spare) spares.add(b);
    void Promise.all(m.items.map(async (item) => {
      const sample = {
        shard: item.shard,
        row: item.row,
        key: item.key,
        files: new Map(item.files.map(([ext, [at, length]]) => [ext, Buffer.from(m.bytes, at, length)])),
        offset: 0,
        members: [],
        ...(item.problem ? { problem: item.problem } : {}),
      } as unknown as Sample;
      try {
        return { id: item.id, sample: await prepareSample(sample, ctx) };
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        return { id: item.id, error: { message: err.message, stack: err.stack } };
      }
    })).then((results) => {
      // One buffer for the whole answer (see Span): a copy of each image here is cheaper than a transfer each there.
      const parts: Uint8Array[] = [];
      const partOf = (b: Uint8Array | Int32Array | undefined) => (b ? parts.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) - 1 : -1);
      const refs = results.map((r) => ({ pixels: partOf(r.sample?.pixels), ids: partOf(r.sample?.ids) }));
      const { bytes, spans } = pack(parts, spares);
      const wire = results.map((r, i) => {
        if (!r.sample) return r;
        const { pixels: _pixels, ids: _ids, ...facts } = r.sample;
        const { pixels, ids } = refs[i]!;
        const sample: WirePreparedSample = { ...facts, ...(pixels >= 0 ? { pixels: spans[pixels]! } : {}), ...(ids >= 0 ? { ids: spans[ids]! } : {}) };
        return { id: r.id, sample };
      });
      // The items' bytes are read (decoders copy what they keep): they go back for the parent's next items.
      post({ type: 'done', results: wire, bytes, spare: m.bytes }, [bytes, m.bytes]);
    });
  });
  post({ type: 'ready' });
}

start(workerData as PrepInit).catch((e: Error) => post({ type: 'fatal', message: e.message, stack: e.stack }));
