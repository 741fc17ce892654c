/**
 * A one-line progress display for terminals. Log lines and the bar share stderr, so the display owns the
 * stream: every log write first erases the bar, then the bar is drawn again below the line. Off a terminal it
 * draws nothing (the structured logs carry the same facts).
 */
import { Writable } from 'node:stream';

export class ProgressLine {
  private text = '';
  private shown = false;
  private lastDraw = 0;
  readonly enabled: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr, enabled?: boolean) {
    this.enabled = enabled ?? Boolean(out.isTTY);
  }

  /** Set the bar's text; redraws at most ten times a second unless `force`. */
  update(text: string, force = false): void {
    this.text = text;
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.draw();
  }

  clear(): void {
    if (this.enabled && this.shown) {
      this.out.write('\r\x1b[2K');
      this.shown = false;
    }
  }

  private draw(): void {
    const width = this.out.columns ?? 100;
    const line = this.text.length > width - 1 ? this.text.slice(0, width - 2) + '…' : this.text;
    this.out.write('\r\x1b[2K' + line);
    this.shown = line.length > 0;
  }

  /** Erase the bar for good (at exit). */
  done(): void {
    this.clear();
    this.text = '';
  }

  /** A stream for the logger: erase the bar, write the line, draw the bar again. */
  loggerStream(): Writable & { isTTY?: boolean } {
    const stream = new Writable({
      write: (chunk: Buffer | string, _enc, cb) => {
        const hadBar = this.shown;
        this.clear();
        this.out.write(chunk);
        if (hadBar) this.draw();
        cb();
      },
    }) as Writable & { isTTY?: boolean };
    stream.isTTY = this.out.isTTY;
    return stream;
  }
}

/** "1.2k", "3.4M": short counts for the bar. */
export function shortCount(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 1e6) return (n / 1e3).toFixed(n < 1e4 ? 1 : 0) + 'k';
  if (n < 1e9) return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + 'M';
  return (n / 1e9).toFixed(1) + 'G';
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
