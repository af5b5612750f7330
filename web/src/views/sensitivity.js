// Sensitivity: per layer, accuracy with only that layer quantized and with all but that layer
// quantized, and with its weights narrowed to fewer bits (a background job).
import { html } from '../html.js';
import { useState } from 'preact/hooks';
import { useJob } from '../hooks.js';
import { Card, JobStrip, DataTable, Empty, Stat } from '../components.js';
import { Plot, barFigure, colors } from '../charts.js';
import { pct } from '../format.js';
import { useStore, saveStudy } from '../store.js';

const BIT_COLORS = ['#9ecae9', '#6baed6', '#3182bd', '#08519c', '#08306b'];

export function SensitivityView({ result }) {
  const names = result.layers.map((l) => l.name);
  // The interesting part is the top of the scale: start the axis a little below the lowest bar.
  const low = (values) => {
    const v = values.filter((x) => x !== null && x !== undefined);
    return v.length ? [Math.max(0, Math.floor(Math.min(...v) * 100 - 3)), 100] : [0, 100];
  };
  const bits = result.layers.length && result.layers[0].weight_bits ? result.layers[0].weight_bits.map((b) => b.bits) : [];
  const columns = [
    { key: 'name', label: 'layer' },
    { key: 'kind', label: 'kind' },
    { key: 'only_this_quantized', label: 'only this quantized', numeric: true, render: (r) => pct(r.only_this_quantized) },
    { key: 'all_but_this_quantized', label: 'all but this quantized', numeric: true, render: (r) => pct(r.all_but_this_quantized) },
    ...bits.map((b, i) => ({ key: `w${b}`, label: `weights ${b} bits`, numeric: true, value: (r) => r.weight_bits[i] && r.weight_bits[i].accuracy, render: (r) => pct(r.weight_bits[i] && r.weight_bits[i].accuracy) })),
  ];
  return html`<div data-testid="sensitivity-view">
    <div class="stats">
      <${Stat} label="FP32" value=${pct(result.fp32_accuracy)} />
      <${Stat} label="quantized" value=${pct(result.quantized_accuracy)} />
      <${Stat} label="all layers bypassed" value=${pct(result.all_bypassed_accuracy)} />
      <${Stat} label="images" value=${result.images} />
    </div>
    <${Card} title="Accuracy with one layer quantized / one layer in FP32">
      <${Plot} testid="sensitivity-chart" figure=${barFigure(names, [
        { name: 'only this layer quantized', values: result.layers.map((l) => l.only_this_quantized), color: colors.quantized },
        { name: 'all but this layer quantized', values: result.layers.map((l) => l.all_but_this_quantized), color: colors.fp32 },
      ], { percent: true, yTitle: 'accuracy', yRange: low(result.layers.flatMap((l) => [l.only_this_quantized, l.all_but_this_quantized])) })} height=${320} />
      <p class="muted small">the axis starts just below the lowest bar; FP32 ${pct(result.fp32_accuracy)}, fully quantized ${pct(result.quantized_accuracy)}.</p>
    </${Card}>
    ${bits.length ? html`<${Card} title="Accuracy with this layer's weights narrowed">
      <${Plot} figure=${barFigure(names, bits.map((b, i) => ({ name: `${b} bits`, values: result.layers.map((l) => l.weight_bits[i] ? l.weight_bits[i].accuracy : null), color: BIT_COLORS[i % BIT_COLORS.length] })), { percent: true, yTitle: 'accuracy' })} height=${320} />
    </${Card}>` : null}
    <${Card} title="Table"><${DataTable} columns=${columns} rows=${result.layers} compact /></${Card}>
  </div>`;
}

export function SensitivityPage({ version }) {
  const [limit, setLimit] = useState(200);
  const [bits, setBits] = useState('2,4,6,8');
  const store = useStore();
  const key = `sensitivity:${version.id}`;
  const result = store.studies[key] || null;
  const job = useJob((res) => saveStudy(key, res));
  const run = () => {
    const list = bits.split(',').map((b) => Number(b.trim())).filter((b) => b);
    job.run({ kind: 'sensitivity', version: version.id, limit, options: { bits: list } });
  };
  return html`<div>
    <div class="page-head">
      <div><h1>Sensitivity <small class="muted">${version.model} · v${version.id}</small></h1>
        <div class="muted">Which layers cost accuracy: each layer quantized alone, each left in FP32, and weights at fewer bits.</div></div>
      <div class="head-actions">
        <label>images <input type="number" class="num-input" min="10" step="10" value=${limit} onChange=${(e) => setLimit(Number(e.currentTarget.value))} /></label>
        <label>weight bits <input class="num-input" value=${bits} onChange=${(e) => setBits(e.currentTarget.value)} /></label>
        <button class="btn primary" onClick=${run} disabled=${job.running} data-testid="run-sensitivity">Run</button>
      </div>
    </div>
    <${JobStrip} job=${job} label="sensitivity" />
    ${result ? html`<${SensitivityView} result=${result} />` : html`<${Card}><${Empty}>Run the study (a background job; about one evaluation per variant).</${Empty}></${Card}>`}
  </div>`;
}
