// The single-image result shared by Inference and Edit: FP32 and quantized top-5 side by side.
import { html } from '../html.js';
import { pct, seconds } from '../format.js';

function TopList({ title, top, label, tone, testid }) {
  return html`<div class="top5 ${tone}" data-testid=${testid}>
    <h3>${title}</h3>
    ${(top || []).map((t, i) => html`<div class="top5-row ${t.index === label ? 'is-label' : ''} ${i === 0 ? 'first' : ''}">
      <span class="top5-class">${t.class}</span>
      <span class="top5-bar"><span style=${{ width: `${Math.max(0.5, 100 * t.probability)}%` }}></span></span>
      <span class="top5-p">${pct(t.probability, 1)}</span>
    </div>`)}
  </div>`;
}

export function PredictionPanel({ result, classes }) {
  if (!result) return null;
  const label = result.label;
  const fp = result.fp32 && result.fp32.top5 && result.fp32.top5[0];
  const q = result.quantized && result.quantized.top5 && result.quantized.top5[0];
  const verdict = (t) => (label === null || label === undefined || !t ? '' : t.index === label ? 'correct' : 'wrong');
  return html`<div class="prediction" data-testid="prediction">
    <div class="prediction-summary">
      ${label !== null && label !== undefined ? html`<span>label <b>${classes ? classes[label] : label}</b></span>` : html`<span class="muted">uploaded image (no label)</span>`}
      ${fp ? html`<span class="pill ${verdict(fp)}">FP32: ${fp.class}</span>` : null}
      ${q ? html`<span class="pill ${verdict(q)}" data-testid="quantized-top1">quantized: ${q.class} ${pct(q.probability, 2)}</span>` : null}
      ${fp && q && fp.index !== q.index ? html`<span class="pill wrong">prediction flipped</span>` : null}
      <span class="muted small">${seconds(result.seconds)}</span>
    </div>
    <div class="top5-pair">
      <${TopList} title="FP32" top=${result.fp32 && result.fp32.top5} label=${label} tone="fp32" testid="top5-fp32" />
      ${result.quantized ? html`<${TopList} title="quantized" top=${result.quantized.top5} label=${label} tone="quantized" testid="top5-quantized" />` : null}
    </div>
  </div>`;
}
