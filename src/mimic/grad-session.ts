/**
 * Runs the per-sample-gradient graph on a batch of pooled features: a thin wrapper over an onnxruntime
 * InferenceSession that the score pipeline calls after the encoder sessions.
 */
import * as ort from 'onnxruntime-node';
import { DEFAULTS } from '../defaults.js';
import { MimicError, errorMessage } from '../errors.js';
import { GRAD_GRAPH_INPUTS, type GradGraphOutput } from './grad-graph.js';
import { MIMIC_LAYERS, type LayerScores, type MimicScores } from './types.js';

export type BatchScores = MimicScores<Float32Array>;

export interface GradSessionOptions {
  /** onnxruntime session options; the defaults (DEFAULTS.gradGraph.session) are merged under them. */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** onnxruntime options that suit a small graph on a shared machine: few threads, no spinning. */
export function defaultSessionOptions(): ort.InferenceSession.SessionOptions {
  const s = DEFAULTS.gradGraph.session;
  return {
    intraOpNumThreads: s.intraOpNumThreads,
    interOpNumThreads: s.interOpNumThreads,
    extra: { session: { intra_op: { allow_spinning: s.allowSpinning ? '1' : '0' } } },
  };
}

export class GradSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly dv: number,
    readonly dt: number,
  ) {}

  /** Loads a graph built by buildGradGraph (bytes, or a file path). */
  static async create(model: Uint8Array | string, opts: GradSessionOptions = {}): Promise<GradSession> {
    let session: ort.InferenceSession;
    try {
      const options = { ...defaultSessionOptions(), ...opts.sessionOptions };
      session =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, options)
          : await ort.InferenceSession.create(model, options);
    } catch (e) {
      throw new MimicError('E_ONNX', `cannot load the gradient graph: ${errorMessage(e)}`, {
        file: typeof model === 'string' ? model : undefined,
        cause: e,
      });
    }
    return GradSession.wrap(session, typeof model === 'string' ? model : undefined);
  }

  /**
   * Wraps a session created elsewhere (e.g. by src/model/session.ts's createSession on a chosen device) over a
   * gradient graph; the graph's inputs are checked.
   */
  static wrap(session: ort.InferenceSession, file?: string): GradSession {
    const dims = (name: string): number => {
      const meta = session.inputMetadata.find((m) => m.name === name);
      const shape = meta && meta.isTensor ? meta.shape : undefined;
      const d = shape?.[1];
      if (typeof d !== 'number') {
        throw new MimicError('E_ONNX', `the model has no input ${name} of shape [B, D]: is it a gradient graph?`, { file });
      }
      return d;
    };
    return new GradSession(session, dims(GRAD_GRAPH_INPUTS.image), dims(GRAD_GRAPH_INPUTS.text));
  }

  /**
   * Scores one batch: `imageFeatures` [b, dv] and `textFeatures` [b, dt], row-major. Samples interact (each
   * sample's loss moves every embedding), so a batch is scored as a whole.
   */
  async run(imageFeatures: Float32Array, textFeatures: Float32Array, b: number): Promise<BatchScores> {
    if (!Number.isInteger(b) || b < 1) throw new MimicError('E_USAGE', `batch size ${b} is not a positive integer`);
    if (imageFeatures.length !== b * this.dv || textFeatures.length !== b * this.dt) {
      throw new MimicError(
        'E_USAGE',
        `features of ${imageFeatures.length} and ${textFeatures.length} values do not make a batch of ${b} ` +
          `with Dv = ${this.dv}, Dt = ${this.dt}`,
      );
    }
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run({
        [GRAD_GRAPH_INPUTS.image]: new ort.Tensor('float32', imageFeatures, [b, this.dv]),
        [GRAD_GRAPH_INPUTS.text]: new ort.Tensor('float32', textFeatures, [b, this.dt]),
      });
    } catch (e) {
      throw new MimicError('E_ONNX', `the gradient graph failed on a batch of ${b}: ${errorMessage(e)}`, { cause: e });
    }
    return scoresFromOutputs(out, b);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Collects a session's outputs (named as GRAD_GRAPH_OUTPUTS) into scores. */
export function scoresFromOutputs(out: Record<string, ort.OnnxValue>, b: number): BatchScores {
  const get = (name: GradGraphOutput): Float32Array => {
    const t = out[name] as ort.Tensor | undefined;
    if (!t || t.type !== 'float32' || t.data.length !== b) {
      throw new MimicError('E_ONNX', `the graph's output ${name} is missing or not float32 [${b}]`);
    }
    return t.data as Float32Array;
  };
  const layer = (l: (typeof MIMIC_LAYERS)[number]): LayerScores<Float32Array> => ({
    gradNorm: get(`grad_norm_${l}`),
    mimicProj: get(`mimic_proj_${l}`),
    mimicCos: get(`mimic_cos_${l}`),
  });
  return { loss: get('loss'), clipSim: get('clip_sim'), visual: layer('visual'), text: layer('text'), both: layer('both') };
}
