/**
 * timeline.html: one self-contained page (inline SVG, no scripts) with every
 * operation as a dot — x = when it was invoked, y = its latency (log scale),
 * colour = outcome — and the fault windows shaded and labelled, in the manner
 * of Jepsen's latency plots. Pure: returns the text; must never load anything
 * from elsewhere.
 */
import type { History, Outcome } from '../history';

const WIDTH = 1200;
const HEIGHT = 520;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 };
const DOTS_MAX = 60_000;
const COLOURS: Record<Outcome, string> = { ok: '#2e8b57', fail: '#e69500', unknown: '#d62728' };
const FAULT_COLOURS = ['#9ecae1', '#fdae6b', '#c7e9c0', '#dadaeb', '#fcbba1', '#d9d9d9', '#fdd0a2', '#bcbddc'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderTimeline(history: History, title: string): string {
  const ops = history.operations.slice(0, DOTS_MAX);
  const endMs = Math.max(1, ...ops.map((op) => op.completeMs), ...history.faults.map((f) => f.endMs ?? f.startMs));
  const latencies = ops.map((op) => Math.max(0.1, op.completeMs - op.invokeMs));
  const minLog = Math.floor(Math.log10(Math.min(1, ...latencies)));
  const maxLog = Math.ceil(Math.log10(Math.max(10, ...latencies)));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (ms: number): number => MARGIN.left + (ms / endMs) * plotW;
  const y = (latencyMs: number): number => MARGIN.top + plotH - ((Math.log10(latencyMs) - minLog) / Math.max(1, maxLog - minLog)) * plotH;
  const parts: string[] = [];
  const names = [...new Set(history.faults.map((f) => f.name))];
  for (const fault of history.faults) {
    const x0 = x(fault.startMs);
    const x1 = Math.max(x0 + 2, x(fault.endMs ?? endMs));
    const colour = FAULT_COLOURS[names.indexOf(fault.name) % FAULT_COLOURS.length];
    parts.push(`<rect x="${x0.toFixed(1)}" y="${MARGIN.top}" width="${(x1 - x0).toFixed(1)}" height="${plotH}" fill="${colour}" fill-opacity="0.45"><title>${escape(`${fault.name} on ${fault.targets.join(',')}: ${(fault.startMs / 1000).toFixed(2)}–${fault.endMs === undefined ? '?' : (fault.endMs / 1000).toFixed(2)} s${fault.detail ? ` (${fault.detail})` : ''}`)}</title></rect>`);
    parts.push(`<text x="${(x0 + 2).toFixed(1)}" y="${MARGIN.top - 4}" font-size="10" transform="rotate(-20 ${(x0 + 2).toFixed(1)} ${MARGIN.top - 4})">${escape(fault.name)}</text>`);
  }
  for (let e = minLog; e <= maxLog; e++) {
    const yy = y(10 ** e);
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${(yy + 4).toFixed(1)}" font-size="11" text-anchor="end">${10 ** e >= 1000 ? `${10 ** (e - 3)} s` : `${10 ** e} ms`}</text>`);
  }
  const stepS = Math.max(1, Math.ceil(endMs / 1000 / 12));
  for (let s = 0; s * 1000 <= endMs; s += stepS) {
    parts.push(`<text x="${x(s * 1000).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" font-size="11" text-anchor="middle">${s} s</text>`);
  }
  ops.forEach((op, i) => {
    parts.push(`<circle cx="${x(op.invokeMs).toFixed(1)}" cy="${y(latencies[i]).toFixed(1)}" r="2" fill="${COLOURS[op.outcome]}" fill-opacity="0.7"><title>${escape(`#${op.id} ${op.client} ${op.kind} ${op.key} ${op.outcome}${op.error ? ` ${op.error}` : ''} ${latencies[i].toFixed(1)} ms`)}</title></circle>`);
  });
  const legend = (Object.keys(COLOURS) as Outcome[]).map((o, i) => `<circle cx="${MARGIN.left + 10 + i * 90}" cy="${HEIGHT - 12}" r="4" fill="${COLOURS[o]}"/><text x="${MARGIN.left + 18 + i * 90}" y="${HEIGHT - 8}" font-size="12">${o}</text>`).join('');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;margin:16px} svg{border:1px solid #ccc;background:#fff}</style></head>
<body><h3>${escape(title)}</h3>
<p>Each dot is one operation: x = invoke time, y = latency (log scale), colour = outcome. Shaded = fault windows (hover for details).${history.operations.length > DOTS_MAX ? ` Only the first ${DOTS_MAX} of ${history.operations.length} operations are drawn.` : ''}</p>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">
<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 24}" font-size="12" text-anchor="middle">time since start</text>
<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>
${parts.join('\n')}
${legend}
</svg></body></html>
`;
}
