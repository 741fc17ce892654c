/**
 * The `mimic stats --report DIR` files: one SVG per score column (histogram) and per mimic/CLIP pair (hexbin
 * with Pearson and Spearman), each also rendered to PNG with sharp, one self-contained HTML page embedding the
 * SVGs and the tables, and stats.json. Hand-written SVG: no plotting library. Every file is written atomically.
 */
import sharp from 'sharp';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file.js';
import { PLOT, type ColumnStats, type Correlation, type PoolStats } from './stats.js';

const W = PLOT.width;
const H = PLOT.height;
const M = PLOT.margin;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Short numbers for axes and tables. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  return Number(x.toPrecision(4)).toString();
}

/** About n round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= step0)!;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function frame(title: string, subtitle: string, body: string, xlabel: string, ylabel: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="#ffffff"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>
<text x="${W / 2}" y="37" text-anchor="middle" fill="#555">${esc(subtitle)}</text>
${body}
<text x="${M.l + (W - M.l - M.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(xlabel)}</text>
<text transform="translate(16 ${M.t + (H - M.t - M.b) / 2}) rotate(-90)" text-anchor="middle">${esc(ylabel)}</text>
</svg>
`;
}

function axes(xlo: number, xhi: number, ylo: number, yhi: number, yFmt: (y: number) => string = fmt): { sx: (x: number) => number; sy: (y: number) => number; svg: string } {
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const sx = (x: number) => M.l + ((x - xlo) / (xhi - xlo)) * pw;
  const sy = (y: number) => M.t + ph - ((y - ylo) / (yhi - ylo)) * ph;
  let svg = `<g stroke="#333" fill="none"><line x1="${M.l}" y1="${M.t + ph}" x2="${M.l + pw}" y2="${M.t + ph}"/><line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${M.t + ph}"/></g>\n`;
  for (const t of ticks(xlo, xhi)) {
    const x = sx(t).toFixed(1);
    svg += `<line x1="${x}" y1="${M.t + ph}" x2="${x}" y2="${M.t + ph + 5}" stroke="#333"/><text x="${x}" y="${M.t + ph + 18}" text-anchor="middle">${fmt(t)}</text>\n`;
  }
  for (const t of ticks(ylo, yhi)) {
    const y = sy(t).toFixed(1);
    svg += `<line x1="${M.l - 5}" y1="${y}" x2="${M.l}" y2="${y}" stroke="#333"/><text x="${M.l - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${yFmt(t)}</text>\n`;
  }
  return { sx, sy, svg };
}

export function histogramSvg(s: ColumnStats): string {
  const h = s.histogram!;
  const max = Math.max(1, ...h.counts);
  const { sx, sy, svg } = axes(h.lo, h.hi, 0, max * 1.05);
  const bw = (h.hi - h.lo) / h.counts.length;
  let bars = '<g fill="#3b6fb6">';
  h.counts.forEach((c, k) => {
    if (c === 0) return;
    const x0 = sx(h.lo + k * bw);
    const x1 = sx(h.lo + (k + 1) * bw);
    bars += `<rect x="${x0.toFixed(2)}" y="${sy(c).toFixed(2)}" width="${Math.max(0.5, x1 - x0 - 0.5).toFixed(2)}" height="${(sy(0) - sy(c)).toFixed(2)}"/>`;
  });
  bars += '</g>\n';
  let marks = '';
  for (const [q, color] of [['p25', '#999'], ['p50', '#d62728'], ['p75', '#999']] as const) {
    const v = s.quantiles[q];
    if (v >= h.lo && v <= h.hi) {
      const x = sx(v).toFixed(1);
      marks += `<line x1="${x}" y1="${M.t}" x2="${x}" y2="${sy(0)}" stroke="${color}" stroke-dasharray="4 3"/><text x="${x}" y="${M.t + 10}" dx="3" fill="${color}">${q}</text>\n`;
    }
  }
  const note = `n=${s.values}; ${h.below} below and ${h.above} above the plotted 0.5–99.5% range`;
  return frame(`${s.column}`, note, svg + bars + marks, s.column, 'rows');
}

/** viridis at t ∈ [0, 1] (a few anchors, linearly interpolated). */
function viridis(t: number): string {
  const a = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(1, Math.max(0, t)) * (a.length - 1);
  const i = Math.min(a.length - 2, Math.floor(x));
  const f = x - i;
  const c = a[i].map((v, k) => Math.round(v + (a[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function hexbinSvg(c: Correlation): string {
  const hb = c.hexbin!;
  const { sx, sy, svg } = axes(hb.xlo, hb.xhi, hb.ylo, hb.yhi);
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  // hexagon radius in pixels: gridX hexagons (√3·radius wide each) across the plot width
  const size = pw / hb.gridX / Math.sqrt(3);
  const maxLog = Math.log(Math.max(1, ...hb.bins.map((b) => b.count)));
  let cells = `<defs><clipPath id="plot"><rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}"/></clipPath></defs><g stroke="none" clip-path="url(#plot)">`;
  for (const b of hb.bins) {
    const pts: string[] = [];
    for (let k = 0; k < 6; k++) {
      const ang = (Math.PI / 180) * (60 * k - 30);
      const px = M.l + b.x * pw + size * Math.cos(ang);
      const py = M.t + ph - b.y * ph + size * Math.sin(ang);
      pts.push(`${px.toFixed(1)},${py.toFixed(1)}`);
    }
    cells += `<polygon points="${pts.join(' ')}" fill="${viridis(maxLog > 0 ? Math.log(b.count) / maxLog : 1)}"/>`;
  }
  cells += '</g>\n';
  void sx;
  void sy;
  // colour bar: log-scaled counts
  const maxCount = Math.max(1, ...hb.bins.map((b) => b.count));
  const bx = W - M.r + 24;
  let bar = `<defs><linearGradient id="vir" x1="0" y1="1" x2="0" y2="0">${[0, 0.25, 0.5, 0.75, 1].map((t) => `<stop offset="${t}" stop-color="${viridis(t)}"/>`).join('')}</linearGradient></defs>`;
  bar += `<rect x="${bx}" y="${M.t}" width="14" height="${ph}" fill="url(#vir)"/>`;
  bar += `<text x="${bx + 18}" y="${M.t + 10}">${maxCount}</text><text x="${bx + 18}" y="${M.t + ph}">1</text>`;
  bar += `<text transform="translate(${bx + 40} ${M.t + ph / 2}) rotate(90)" text-anchor="middle" fill="#555">rows (log)</text>\n`;
  const note = `Pearson ${c.pearson.toFixed(4)} · Spearman ${c.spearman.toFixed(4)}${c.spearmanRows < c.n ? ` (sample of ${c.spearmanRows})` : ''} · n=${c.n}`;
  return frame(`${c.x} vs ${c.y}`, note, svg + cells + bar, c.x, c.y);
}

/** Render an SVG to PNG with sharp (librsvg). */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}

export interface ReportFiles {
  html: string;
  json: string;
  svg: string[];
  png: string[];
}

/** Write the report into `dir` (created if needed). */
export async function writeReport(dir: string, st: PoolStats): Promise<ReportFiles> {
  const files: ReportFiles = { html: join(dir, 'index.html'), json: join(dir, 'stats.json'), svg: [], png: [] };
  const figures: { title: string; svg: string; base: string }[] = [];
  for (const s of st.columns) if (s.histogram) figures.push({ title: s.column, svg: histogramSvg(s), base: `hist-${safeName(s.column)}` });
  for (const c of st.correlations) if (c.hexbin) figures.push({ title: `${c.x} vs ${c.y}`, svg: hexbinSvg(c), base: `corr-${safeName(c.x)}-${safeName(c.y)}` });
  for (const f of figures) {
    const svgPath = join(dir, `${f.base}.svg`);
    const pngPath = join(dir, `${f.base}.png`);
    writeFileAtomicSync(svgPath, f.svg);
    writeFileAtomicSync(pngPath, await svgToPng(f.svg));
    files.svg.push(svgPath);
    files.png.push(pngPath);
  }
  writeFileAtomicSync(files.json, JSON.stringify(st, (k, v) => (k === 'hexbin' ? undefined : v), 2) + '\n');
  writeFileAtomicSync(files.html, html(st, figures));
  return files;
}

function html(st: PoolStats, figures: { title: string; svg: string }[]): string {
  const qcols = ['p1', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99'];
  const rows = st.columns.map((s) => `<tr><td>${esc(s.column)}</td><td>${s.values}</td><td>${s.missing}</td><td>${fmt(s.mean)}</td><td>${fmt(s.std)}</td><td>${fmt(s.min)}</td>${qcols.map((q) => `<td>${fmt(s.quantiles[q])}</td>`).join('')}<td>${fmt(s.max)}</td></tr>`).join('\n');
  const corr = st.correlations.map((c) => `<tr><td>${esc(c.x)}</td><td>${esc(c.y)}</td><td>${c.n}</td><td>${c.pearson.toFixed(4)}</td><td>${c.spearman.toFixed(4)}${c.spearmanRows < c.n ? ` (sample of ${c.spearmanRows})` : ''}</td></tr>`).join('\n');
  const excluded = Object.entries(st.excludedByStatus).map(([k, v]) => `${esc(k)} ${v}`).join(', ') || 'none';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mimic stats</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em}</style>
</head><body>
<h1>Score statistics</h1>
<p>${st.rows} rows, ${st.ok} ok; excluded by status: ${excluded}. Checkpoints: ${st.checkpoints.map(esc).join(', ')} (aggregate ${esc(st.aggregate)}, normalise ${esc(st.normalize)}).
Quantiles are numpy's linear percentiles over the ok rows.${st.empty.length ? ` Columns without values: ${st.empty.map(esc).join(', ')}.` : ''}</p>
<table><tr><th>column</th><th>values</th><th>missing</th><th>mean</th><th>std</th><th>min</th>${qcols.map((q) => `<th>${q}</th>`).join('')}<th>max</th></tr>
${rows}
</table>
<h2>Mimic score vs CLIP score (${esc(st.clipColumn ?? 'no CLIP column')})</h2>
<table><tr><th>mimic</th><th>CLIP</th><th>rows</th><th>Pearson</th><th>Spearman</th></tr>
${corr}
</table>
${figures.map((f) => `<figure>${f.svg.replace(/^<svg /, `<svg role="img" aria-label="${esc(f.title)}" `)}</figure>`).join('\n')}
</body></html>
`;
}

/** The terminal table of `mimic stats`. */
export function formatStatsTable(st: PoolStats): string {
  const head = ['column', 'values', 'missing', 'mean', 'std', 'min', 'p1', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99', 'max'];
  const body = st.columns.map((s) => [s.column, String(s.values), String(s.missing), fmt(s.mean), fmt(s.std), fmt(s.min), ...['p1', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99'].map((q) => fmt(s.quantiles[q])), fmt(s.max)]);
  const widths = head.map((h, k) => Math.max(h.length, ...body.map((r) => r[k].length)));
  const line = (r: string[]) => r.map((c, k) => (k === 0 ? c.padEnd(widths[k]) : c.padStart(widths[k]))).join('  ');
  const out = [`${st.rows} rows, ${st.ok} ok` + (Object.keys(st.excludedByStatus).length ? `; excluded: ${Object.entries(st.excludedByStatus).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''), line(head), ...body.map(line)];
  if (st.empty.length) out.push(`no values: ${st.empty.join(', ')}`);
  for (const c of st.correlations) out.push(`${c.x} vs ${c.y}: Pearson ${c.pearson.toFixed(4)}, Spearman ${c.spearman.toFixed(4)}${c.spearmanRows < c.n ? ` (sample of ${c.spearmanRows})` : ''}, n=${c.n}`);
  return out.join('\n') + '\n';
}
