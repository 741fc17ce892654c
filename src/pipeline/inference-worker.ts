/**
 * The inference thread. onnxruntime-node's `run` blocks the thread that calls it, so the sessions live here and
 * the main thread keeps reading tar bytes and decoding images while a batch runs. Batches come in order; each
 * is run through every checkpoint's encoders and gradient graph (and the reference's encoders for its CLIP score).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { relayLogsTo } from '../log.js';
import { DEFAULTS } from '../defaults.js';
import { isMimicError } from '../errors.js';
import { GradSession, exportGradGraph, type BatchScores } from '../mimic/index.js';
import { buildClipSimGraph, CLIP_SIM_OUTPUT } from '../mimic/clip-sim-graph.js';
import { createSession, loadBundle, openEncoders, type Encoders } from '../model/index.js';
import { GRAD_GRAPH_INPUTS } from '../mimic/grad-graph.js';
import * as ort from 'onnxruntime-node';
import type { BatchRequest, InferenceInit, ParentMessage, SerializedError, WorkerMessage } from './inference-protocol.js';

interface CheckpointRuntime {
  name: string;
  encoders: Encoders;
  grad: GradSession;
  dv: number;
  dt: number;
  /** The last batch's features, for the filler rows of the shard's final batch. */
  last: { shardSeq: number; image: Float32Array; text: Float32Array; b: number } | null;
}

function serialize(e: unknown): SerializedError {
  if (isMimicError(e)) return { name: e.name, code: e.code, message: e.message, hint: e.hint, file: e.file, stack: e.stack };
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, stack: err.stack };
}

function post(m: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

async function start(init: InferenceInit): Promise<void> {
  relayLogsTo(parentPort!, init.logLevel ?? 'info');
  const session = {
    device: init.device, intraOpThreads: init.intraOpThreads, interOpThreads: init.interOpThreads,
    pixels: init.pixels ?? 'float32', precision: init.precision ?? 'fp32',
    ...(init.sourceSize ? { sourceSize: init.sourceSize } : {}),
  };
  const reference = await loadBundle(init.reference, { hash: false });
  const checkpoints: CheckpointRuntime[] = [];
  let provider = 'cpu';
  let deviceId: number | undefined;
  for (const c of init.checkpoints) {
    const bundle = await loadBundle(c.dir, { hash: false });
    const encoders = await openEncoders(bundle, session);
    provider = encoders.provider;
    deviceId = encoders.deviceId;
    const device = provider === 'cuda' ? `cuda:${deviceId ?? 0}` : 'cpu';
    const g = DEFAULTS.gradGraph.session;
    const created = await createSession(exportGradGraph(bundle.heads, reference.heads), {
      device,
      intraOpThreads: g.intraOpNumThreads,
      interOpThreads: g.interOpNumThreads,
      label: `gradient graph of ${c.name}`,
    });
    checkpoints.push({ name: c.name, encoders, grad: GradSession.wrap(created.session), dv: bundle.heads.dv, dt: bundle.heads.dt, last: null });
  }
  let refRuntime: { encoders: Encoders; sim: ort.InferenceSession } | null = null;
  if (init.referenceClipScore) {
    const device = provider === 'cuda' ? `cuda:${deviceId ?? 0}` : 'cpu';
    const encoders = await openEncoders(reference, { ...session, device });
    const sim = await createSession(buildClipSimGraph(reference.heads), { device, intraOpThreads: 1, interOpThreads: 1, label: 'reference CLIP score' });
    refRuntime = { encoders, sim: sim.session };
  }

  const runBatch = async (req: BatchRequest): Promise<void> => {
    const started = performance.now();
    const scores: Record<string, BatchScores> = {};
    for (const c of checkpoints) {
      const image = await c.encoders.imageFeatures(req.pixels, req.n, req.resizedMask);
      const text = await c.encoders.textFeatures(req.ids, req.n);
      let b = req.n;
      let img = image;
      let txt = text;
      if (req.fill > 0) {
        const last = c.last;
        if (!last || last.shardSeq !== req.shardSeq || last.b < req.fill) {
          throw new Error(`filler rows requested for shard ${req.shardSeq} without a previous batch of it`);
        }
        b = req.n + req.fill;
        img = concatRows(image, last.image, last.b - req.fill, req.fill, c.dv);
        txt = concatRows(text, last.text, last.b - req.fill, req.fill, c.dt);
      }
      const out = await c.grad.run(img, txt, b);
      scores[c.name] = b === req.n ? out : sliceScores(out, req.n);
      c.last = { shardSeq: req.shardSeq, image, text, b: req.n };
    }
    let refClipSim: Float32Array | null = null;
    if (refRuntime) {
      const image = await refRuntime.encoders.imageFeatures(req.pixels, req.n, req.resizedMask);
      const text = await refRuntime.encoders.textFeatures(req.ids, req.n);
      const out = await refRuntime.sim.run({
        [GRAD_GRAPH_INPUTS.image]: new ort.Tensor('float32', image, [req.n, image.length / req.n]),
        [GRAD_GRAPH_INPUTS.text]: new ort.Tensor('float32', text, [req.n, text.length / req.n]),
      });
      refClipSim = (out[CLIP_SIM_OUTPUT] as ort.Tensor).data as Float32Array;
    }
    // The runs are over, so the input buffers are free: they go back to be filled again.
    const returned = [req.pixels.buffer as ArrayBuffer, req.ids.buffer as ArrayBuffer];
    post({ type: 'result', seq: req.seq, scores, refClipSim, busyMs: performance.now() - started, returned }, returned);
  };

  // Batches are run one at a time, in the order they arrive: the filler rows depend on that order.
  let queue = Promise.resolve();
  parentPort!.on('message', (m: ParentMessage) => {
    if (m.type === 'close') {
      queue = queue.then(async () => {
        for (const c of checkpoints) {
          await c.encoders.release();
          await c.grad.release();
        }
        if (refRuntime) {
          await refRuntime.encoders.release();
          await refRuntime.sim.release();
        }
        parentPort!.close();
      });
      return;
    }
    queue = queue.then(() => runBatch(m).catch((e) => post({ type: 'error', seq: m.seq, error: serialize(e) })));
  });
  post({ type: 'ready', provider, ...(deviceId === undefined ? {} : { deviceId }) });
}

function concatRows(head: Float32Array, from: Float32Array, start: number, count: number, width: number): Float32Array {
  const out = new Float32Array(head.length + count * width);
  out.set(head);
  out.set(from.subarray(start * width, (start + count) * width), head.length);
  return out;
}

function sliceScores(s: BatchScores, n: number): BatchScores {
  const layer = (l: BatchScores['visual']) => ({ gradNorm: l.gradNorm.slice(0, n), mimicProj: l.mimicProj.slice(0, n), mimicCos: l.mimicCos.slice(0, n) });
  return { loss: s.loss.slice(0, n), clipSim: s.clipSim.slice(0, n), visual: layer(s.visual), text: layer(s.text), both: layer(s.both) };
}

start(workerData as InferenceInit).catch((e) => post({ type: 'fatal', error: serialize(e) }));
