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
import type { PrepInit, PrepParentMessage, PrepWorkerMessage } from './prep-protocol.js';
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
  parentPort!.on('message', (m: PrepParentMessage) => {
    if (m.type === 'close') {
      parentPort!.close();
      return;
    }
    void Promise.all(m.items.map(async (item) => {
      const sample = {
        shard: item.shard,
        row: item.row,
        key: item.key,
        files: new Map(item.files.map(([ext, bytes]) => [ext, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)])),
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
      const transfer: ArrayBuffer[] = [];
      for (const r of results) {
        // Each result owns its pixel and id buffers (sharp allocates one per image), so they move without a copy.
        const px = r.sample?.pixels;
        if (px && px.byteOffset === 0 && px.byteLength === px.buffer.byteLength) transfer.push(px.buffer as ArrayBuffer);
        const ids = r.sample?.ids;
        if (ids && ids.byteOffset === 0 && ids.byteLength === ids.buffer.byteLength) transfer.push(ids.buffer as ArrayBuffer);
      }
      post({ type: 'done', results }, [...new Set(transfer)]);
    });
  });
  post({ type: 'ready' });
}

start(workerData as PrepInit).catch((e: Error) => post({ type: 'fatal', message: e.message, stack: e.stack }));
