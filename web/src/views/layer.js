// Layer detail: weight histogram, per-channel ranges and heatmap; activation histogram FP32
// vs dequantized with the quantization grid and clip bounds; error metrics on one image.
import { html } from '../html.js';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Card, Pending, Empty } from '../components.js';
import { Plot, histogramFigure, channelRangeFigure, heatmapFigure } from '../charts.js';
import { href } from '../router.js';
import { useStore } from '../store.js';
import { num, db, pct } from '../format.js';
import { quantLayers } from '../quant.js';

const METRICS = [
  ['sqnr_db', 'SQNR', db],
  ['mse', 'MSE', num],
  ['cosine', 'cosine', (x) => num(x, 6)],
  ['max_abs', 'max |error|', num],
  ['rmse_over_scale', 'rmse / scale', num],
  ['clip_rate', 'clipping', pct],
];

export function MetricsTable({ metrics }) {
  if (!metrics) return html`<${Empty}>No metrics for this layer.</${Empty}>`;
  const cols = ['accumulated', 'isolated'].filter((k) => metrics[k]);
  // Clipping (FP32 values outside the output grid) is one figure for both columns: the layer's
  // FP32 output is what both runs are measured against.
  const value = (c, key) => {
    const v = metrics[c][key];
    if ((v === undefined || v === null) && key === 'clip_rate' && metrics.clipping) return metrics.clipping.rate;
    return v;
  };
  return html`<table class="kv metrics" data-testid="layer-metrics">
    <tr><th></th>${cols.map((c) => html`<th class="num">${c}</th>`)}</tr>
    ${METRICS.map(([key, label, fmt]) => html`<tr><th>${label}</th>${cols.map((c) => html`<td class="num">${fmt(value(c, key))}</td>`)}</tr>`)}
    ${metrics.codes ? html`<tr><th>codes used</th><td class="num" colspan=${cols.length}>${metrics.codes.distinct} of ${metrics.codes.qmax - metrics.codes.qmin + 1} (${pct(metrics.codes.range_use, 1)})</td></tr>
      <tr><th>at qmin / qmax</th><td class="num" colspan=${cols.length}>${metrics.codes.at_qmin} / ${metrics.codes.at_qmax} of ${metrics.codes.codes}</td></tr>` : null}
  </table>`;
}

function channelsWithClip(perChannel, grid) {
  if (!perChannel) return null;
  if (!grid) return perChannel;
  return perChannel.map((c) => ({ ...c, clip_min: c.scale * (grid.qmin - c.zero_point), clip_max: c.scale * (grid.qmax - c.zero_point) }));
}

export function LayerView({ detail, version, image, layers, actScope, setActScope }) {
  const w = detail.weight;
  const a = detail.activation;
  const idx = layers.indexOf(detail.layer);
  const prev = idx > 0 ? layers[idx - 1] : null;
  const next = idx >= 0 && idx + 1 < layers.length ? layers[idx + 1] : null;
  const grid = a && a.histogram && a.histogram.grid;
  return html`<div class="layer-detail" data-testid="layer-detail">
    <div class="page-head">
      <div>
        <h1>${detail.layer} <small class="muted">${detail.op_type} · ${detail.kind}</small></h1>
        <div class="muted">${version.model} v${version.id} · image ${image}</div>
      </div>
      <div class="head-actions">
        ${prev ? html`<a class="btn" href=${href('layer', { v: version.id, image }, prev)}>← ${prev}</a>` : null}
        ${next ? html`<a class="btn" href=${href('layer', { v: version.id, image }, next)}>${next} →</a>` : null}
        <a class="btn primary" href=${href('edit', { v: version.id, layer: detail.layer })} data-testid="edit-layer">Edit this layer</a>
      </div>
    </div>
    <div class="grid-2">
      <${Card} title=${`Error on image ${image}`}>
        <${MetricsTable} metrics=${detail.metrics} />
        <p class="muted small">accumulated: this layer's output in the quantized model against the FP32 model's;
          isolated: only this layer quantized, fed the FP32 inputs.</p>
      </${Card}>
      <${Card} title="Output activation" actions=${html`<select value=${actScope} onChange=${(e) => setActScope(e.currentTarget.value)} data-testid="act-scope">
          <option value="image">image ${image}</option><option value="100">first 100 images</option></select>`}>
        ${a ? html`<div class="muted small"><code>${a.tensor}</code>${grid ? html` · ${grid.dtype} ${grid.bits} bits · scale ${num(grid.scales[0])} · zero point ${grid.zero_points[0]} · clip [${num(grid.clip_min[0])}, ${num(grid.clip_max[0])}]` : null}</div>
          <${Plot} testid="activation-histogram" figure=${histogramFigure(a.histogram, { title: 'FP32 vs dequantized (dotted: grid, dashed: clip bounds)' })} height=${300} />`
          : html`<${Empty}>This layer's output is not quantized.</${Empty}>`}
      </${Card}>
    </div>
    ${w ? html`<div class="grid-2">
      <${Card} title="Weights">
        <div class="muted small"><code>${w.tensor}</code></div>
        <${Plot} testid="weight-histogram" figure=${histogramFigure(w.histogram, { title: 'weight histogram: FP32 vs dequantized' })} height=${280} />
      </${Card}>
      <${Card} title="Per-channel ranges">
        <${Plot} figure=${channelRangeFigure(channelsWithClip(w.per_channel, w.histogram && w.histogram.grid), { title: 'min..max per output channel (ticks: clip bounds)' })} height=${280} />
      </${Card}>
    </div>
    <${Card} title="Weight heatmap (dequantized, output channel × input·kh·kw)">
      <${Plot} testid="weight-heatmap" figure=${heatmapFigure(w.heatmap, { xTitle: 'input × kernel position', yTitle: 'output channel' })} height=${Math.min(520, 160 + 8 * (w.heatmap ? w.heatmap.rows : 16))} />
    </${Card}>` : html`<${Card} title="Weights"><${Empty}>${detail.kind} layers have no weights.</${Empty}></${Card}>`}
  </div>`;
}

export function LayerPage({ route, version }) {
  const store = useStore();
  const image = route.params.image !== undefined ? Number(route.params.image) : store.image;
  const [actScope, setActScope] = useState('image');
  const layerName = route.arg;
  const detail = useApi(() => (layerName ? api.layer(version.id, layerName, { image }) : null), [version.id, layerName, image]);
  // Without an image the server histograms the first `limit` images (and gives no metrics).
  const wide = useApi(() => (layerName && actScope !== 'image' ? api.layer(version.id, layerName, { limit: actScope }) : null),
    [version.id, layerName, actScope]);
  const quant = useApi(() => api.quant(version.id), [version.id]);
  const layers = quantLayers(quant.data).map((l) => l.name);
  if (!layerName) {
    return html`<${Card} title="Layer detail"><p>Pick a layer:</p><ul class="plain">${layers.map((l) => html`<li><a href=${href('layer', { v: version.id }, l)}>${l}</a></li>`)}</ul></${Card}>`;
  }
  if (!detail.data) return html`<${Pending} query=${detail} what=${`layer ${layerName}`} />`;
  const shown = actScope !== 'image' && wide.data ? { ...detail.data, activation: wide.data.activation } : detail.data;
  return html`<${LayerView} detail=${shown} version=${version} image=${image} layers=${layers}
    actScope=${actScope} setActScope=${setActScope} />`;
}
