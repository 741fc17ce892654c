import { describe, it, expect, afterEach } from 'vitest';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import { log, logRelayed, setLogger } from '../../src/log.js';

// A real worker thread running the compiled log module, as the pipeline's threads do.
const distLog = new URL('../../dist/log.js', import.meta.url).href;
const threadCode = `
  const { parentPort, workerData } = require('node:worker_threads');
  import(${JSON.stringify(distLog)}).then(({ relayLogsTo, log }) => {
    relayLogsTo(parentPort, workerData.level);
    log().info({ shard: 'a.tar' }, 'an info record');
    log().warn({ shard: 'b.tar', rows: 3 }, 'a warning');
    parentPort.postMessage({ type: 'done' });
  });
`;

async function runThread(level: string): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  setLogger(pino({ level: 'trace' }, { write: (s: string) => void lines.push(JSON.parse(s)) }));
  const w = new Worker(threadCode, { eval: true, workerData: { level } });
  await new Promise<void>((resolve, reject) => {
    w.on('message', (m: { type?: string }) => { if (!logRelayed(m) && m.type === 'done') resolve(); });
    w.on('error', reject);
  });
  await w.terminate();
  return lines;
}

describe('log relay from worker threads', () => {
  const original = log();
  afterEach(() => setLogger(original));

  it('records logged in a thread reach the parent logger with their level, message and fields', async () => {
    const lines = await runThread('info');
    expect(lines.map((l) => [l.level, l.msg, l.shard])).toEqual([[30, 'an info record', 'a.tar'], [40, 'a warning', 'b.tar']]);
    expect(lines[1]!.rows).toBe(3);
    // The parent's own bindings (pid, hostname, time) are stamped once, by the parent.
    expect(lines[1]!.pid).toBe(process.pid);
  });

  it('the thread applies the parent level: below it nothing is posted', async () => {
    const lines = await runThread('warn');
    expect(lines.map((l) => l.msg)).toEqual(['a warning']);
  });

  it('other messages are left to the protocol handler', () => {
    expect(logRelayed({ type: 'result', seq: 1 })).toBe(false);
    expect(logRelayed(null)).toBe(false);
  });
});
