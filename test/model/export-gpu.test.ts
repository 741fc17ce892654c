/**
 * The exporter on a GPU machine's PyTorch: `--fp16` adds the fp16 encoders through scripts/add-fp16, and a Python
 * without the onnx package still exports (the onnx.checker step is skipped and said; onnxruntime checks the files).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLIP_VOCAB, EXPORTER, PYTHON } from '../helpers/bundles.js';
import { tempDir } from '../helpers/shards.js';
import { loadBundle } from '../../src/model/index.js';

const run = promisify(execFile);
const t = tempDir('mimic-export-gpu-');
afterAll(t.cleanup);

describe('export_bundle.py for the GPU path', () => {
  it('--fp16 writes visual.fp16.onnx and textual.fp16.onnx and declares them', async () => {
    const out = t.path('fp16');
    const { stdout } = await run(PYTHON, [EXPORTER, '--out', out, '--config', 'tiny', '--seed', '11', '--vocab', CLIP_VOCAB, '--verify', 'skip', '--fp16'], { timeout: 300_000 });
    expect(stdout).toMatch(/fp16 encoders written/);
    const b = await loadBundle(out);
    expect(b.manifest.variants).toEqual({ fp16: { visual: 'visual.fp16.onnx', textual: 'textual.fp16.onnx' } });
  }, 300_000);

  it('exports without the onnx package, says what was not checked, and the bundle passes mimic check', async () => {
    const out = t.path('noonnx');
    const code = `import sys, runpy; sys.modules['onnx'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')`;
    const { stdout } = await run(PYTHON, ['-c', code, EXPORTER, '--out', out, '--config', 'tiny', '--seed', '12', '--vocab', CLIP_VOCAB, '--verify', 'required'], { timeout: 300_000 });
    expect(stdout).toMatch(/the onnx package is not installed/);
    expect(stdout).toMatch(/onnxruntime reproduces the PyTorch features/);
    const b = await loadBundle(out);
    // Without onnx the feature axis is left symbolic, which the loader accepts.
    expect(b.signatures.visual.outputs[0]!.name).toBe('image_features');
  }, 300_000);
});
