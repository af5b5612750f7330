// Layer table: every quantized tensor of the version with its grid, and the SQNR of its
// layer on the current image (accumulated: error so far; isolated: this layer alone).
import { html } from '../html.js';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { useApi, useJob } from '../hooks.js';
import { Card, DataTable, Pending, JobStrip } from '../components.js';
import { navigate, href } from '../router.js';
import { useStore, saveStudy } from '../store.js';
import { num, db } from '../format.js';
import { quantTensors, paramsSummary } from '../quant.js';

// infer: POST /api/infer (one image) or a compare job's result (layers[].name, many images).
export function layerRows(quant, infer) {
  const metrics = new Map(((infer && infer.layers) || []).map((l) => [l.layer || l.name, l]));
  return quantTensors(quant).map((q) => {
    const m = metrics.get(q.layer);
    const per = q.scales && q.scales.length > 1;
    return {
      ...q,
      channels: q.scales ? q.scales.length : 0,
      scale_value: q.scales && q.scales.length ? Math.min(...q.scales) : null,
      zp_value: q.zero_points && q.zero_points.length ? q.zero_points[0] : null,
      granularity: per ? `channel, axis ${q.axis}` : 'tensor',
      clip: q.clip_min && q.clip_min.length === 1 ? `[${num(q.clip_min[0])}, ${num(q.clip_max[0])}]` : per ? 'per channel' : '–',
      scale_text: paramsSummary(q, 'scale'),
      sqnr_acc: m && m.accumulated ? m.accumulated.sqnr_db : null,
      sqnr_iso: m && m.isolated ? m.isolated.sqnr_db : null,
    };
  });
}

export function LayersView({ rows, version, image, scope, actions }) {
  const columns = [
    { key: 'tensor', label: 'tensor', render: (r) => html`<code>${r.tensor}</code>${r.edited ? html` <span class="tag edited">edited</span>` : null}` },
    { key: 'role', label: 'role', render: (r) => html`<span class="tag ${r.role}">${r.role}</span>` },
    { key: 'layer', label: 'layer', render: (r) => (r.layer ? html`<a href=${href('layer', { v: version.id, image }, r.layer)} onClick=${(e) => e.stopPropagation()}>${r.layer}</a>` : '–') },
    { key: 'dtype', label: 'dtype' },
    { key: 'bits', label: 'bits', numeric: true },
    { key: 'granularity', label: 'per' },
    { key: 'scale_value', label: 'scale', numeric: true, render: (r) => paramsSummary(r, 'scale') },
    { key: 'zp_value', label: 'zero point', numeric: true, render: (r) => paramsSummary(r, 'zero_point') },
    { key: 'clip', label: 'clip range' },
    { key: 'sqnr_acc', label: 'SQNR acc.', numeric: true, render: (r) => db(r.sqnr_acc), title: `layer output SQNR over ${scope}, error accumulated from the input` },
    { key: 'sqnr_iso', label: 'SQNR iso.', numeric: true, render: (r) => db(r.sqnr_iso), title: `layer output SQNR over ${scope} with only this layer quantized` },
  ];
  return html`<${Card} title=${`Quantized tensors · ${version.model} v${version.id}`}
      actions=${html`<span class="muted">SQNR of each tensor's layer over ${scope}</span>${actions}`}>
    <${DataTable} testid="layer-table" compact columns=${columns} rows=${rows} filterPlaceholder="Filter by tensor, layer, role, dtype…"
      onRowClick=${(r) => r.layer && navigate('layer', { v: version.id, image }, r.layer)} />
  </${Card}>`;
}

export function LayersPage({ version }) {
  const { image, studies } = useStore();
  const quant = useApi(() => api.quant(version.id), [version.id]);
  const infer = useApi(() => api.infer(version.id, image), [version.id, image]);
  // Optional: the same metrics pooled over the first 100 images (a compare job).
  const key = `compare:${version.id}`;
  const [showWide, setShowWide] = useState(true);
  const job = useJob((res) => {
    saveStudy(key, res);
    setShowWide(true);
  });
  const wide = showWide ? studies[key] || null : null;
  if (!quant.data) return html`<${Pending} query=${quant} what="quantized tensors" />`;
  const actions = html`<button class="btn small" disabled=${job.running} data-testid="compare-100"
      onClick=${() => job.run({ kind: 'compare', version: version.id, limit: 100 })}>Measure on 100 images</button>
    ${studies[key] ? html`<button class="btn small" onClick=${() => setShowWide(!showWide)}>${showWide ? `Show image ${image}` : `Show ${studies[key].images} images`}</button>` : null}`;
  return html`<div>
    <${JobStrip} job=${job} label="compare" />
    <${LayersView} rows=${layerRows(quant.data, wide || infer.data)} version=${version} image=${image}
      scope=${wide ? `${wide.images} images` : `image ${image} (pick it in Inference)`} actions=${actions} />
  </div>`;
}
