/**
 * English as DataComp decides it: the top label of fastText's lid.176 language-identification model. The npm
 * package fasttext.wasm.js ships `lid.176.ftz` (the quantized variant of the `lid.176.bin` DataComp downloads)
 * and fastText compiled to WebAssembly; both are read from node_modules, so nothing is fetched at run time.
 */
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MimicError, errorMessage } from '../errors.js';
import { captionForLanguageId } from './datacomp-rules.js';

export interface LanguageGuess {
  /** The label without fastText's `__label__` prefix, e.g. `en`, `fr`, `zh`. */
  lang: string;
  /** The model's probability for that label. */
  prob: number;
}

export interface LanguageIdOptions {
  /**
   * A fastText language-identification model (`.ftz` or `.bin`); defaults to the `lid.176.ftz` that
   * fasttext.wasm.js ships. DataComp used `lid.176.bin`: pass it here to match DataComp exactly (~126 MB).
   */
  modelPath?: string;
}

interface WasmVector {
  size(): number;
  get(i: number): [number, string];
  delete(): void;
}

interface WasmModel {
  predict(text: string, k: number, threshold: number): WasmVector;
  isQuant(): boolean;
}

/** Where fasttext.wasm.js keeps lid.176.ftz (resolved from the package, so it works from src/ and dist/). */
export function bundledLidModelPath(): string {
  // the package's entry is dist/main/node.cjs; the model lives under dist/models/
  const entry = createRequire(import.meta.url).resolve('fasttext.wasm.js');
  return join(dirname(entry), '..', 'models', 'language-identification', 'assets', 'lid.176.ftz');
}

/** fastText language identification, one wasm instance per model. */
export class LanguageIdentifier {
  private constructor(
    private readonly model: WasmModel,
    /** The model file in use. */
    readonly modelPath: string,
  ) {}

  static async load(opts: LanguageIdOptions = {}): Promise<LanguageIdentifier> {
    const modelPath = opts.modelPath ?? bundledLidModelPath();
    try {
      await access(modelPath);
    } catch (e) {
      throw new MimicError('E_IO', `cannot read the fastText language-identification model ${modelPath}: ${errorMessage(e)}`, {
        file: modelPath,
        hint: 'reinstall the npm package fasttext.wasm.js (it ships lid.176.ftz), or pass the path of lid.176.bin / lid.176.ftz',
      });
    }
    try {
      // loaded on first use: importing the library should not pull in the wasm glue
      const { getFastTextClass, getFastTextModule } = await import('fasttext.wasm.js');
      const FastText = await getFastTextClass({ getFastTextModule: () => getFastTextModule() });
      const ft = new FastText();
      // loadModel reads the file through a file:// URL into the wasm file system
      const model = (await ft.loadModel(pathToFileURL(modelPath).href)) as unknown as WasmModel;
      const probe = model.predict('probe', 1, 0);
      const ok = probe.size() === 1 && probe.get(0)[1].startsWith('__label__');
      probe.delete();
      if (!ok) throw new Error('the model does not predict __label__ labels');
      return new LanguageIdentifier(model, modelPath);
    } catch (e) {
      throw new MimicError('E_IO', `${modelPath} is not a fastText language-identification model: ${errorMessage(e)}`, {
        file: modelPath,
        hint: 'pass lid.176.bin or lid.176.ftz from fastText',
      });
    }
  }

  /** Whether the model is quantized (.ftz). */
  get quantized(): boolean {
    return this.model.isQuant();
  }

  /**
   * The top label for one line of text, exactly as fastText's Python `predict(text)` gives it: the binding adds
   * the end-of-line token that Python's wrapper adds. `text` must not hold newlines (use `identify`).
   */
  predict(text: string): LanguageGuess {
    const v = this.model.predict(text, 1, 0);
    try {
      // fastText predicts even for an empty line (its end-of-line token is a word), so there is always one label
      const [prob, label] = v.get(0);
      return { lang: label.slice('__label__'.length), prob };
    } finally {
      // embind vectors live on the wasm heap until deleted
      v.delete();
    }
  }

  /**
   * The probability of one label (e.g. `en`) for one line of text. fastText's tree search drops labels under
   * about 1e-5 (its log adds 1e-5 before comparing with the threshold 0), and those read as 0 here.
   */
  probabilityOf(text: string, lang: string): number {
    const want = '__label__' + lang;
    const v = this.model.predict(text, -1, 0);
    try {
      const n = v.size();
      for (let i = 0; i < n; i++) {
        const [prob, label] = v.get(i);
        if (label === want) return prob;
      }
      return 0;
    } finally {
      v.delete();
    }
  }

  /** The language of a caption, preprocessed as DataComp does (newlines become spaces). */
  identify(caption: string): LanguageGuess {
    return this.predict(captionForLanguageId(caption));
  }
}
