/** Runs test/onnx/onnx_tool.py with the system Python that has the onnx package (the independent oracle). */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const TOOL = fileURLToPath(new URL('./onnx_tool.py', import.meta.url));
export const PYTHON = process.env.MIMIC_TEST_PYTHON ?? '/usr/bin/python3';

export function onnxTool(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(PYTHON, [TOOL, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function onnxToolJson<T>(...args: string[]): T {
  const r = onnxTool(...args);
  if (r.status !== 0) throw new Error(`onnx_tool ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
