import { defineConfig } from 'vitest/config';

// One worker: the build machines have two cores and the ONNX sessions use both.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 300_000,
    // The library logs every scored shard at info; tests that check logs install their own logger or pass
    // --log-level. Children spawned by tests inherit this too.
    env: { MIMIC_LOG_LEVEL: 'warn' },
  },
});
