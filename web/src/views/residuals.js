// Residual connections: every Add with the scales of its two inputs, their ratio, the output
// scale, the error its requantization adds and (against the FP32 model) its whole error.
import { html } from '../html.js';
import { useEffect, useState } from 'preact/hooks';
import { useJob } from '../hooks.js';
import { Card, JobStrip, DataTable, Empty } from '../components.js';
import { Plot, barFigure, colors } from '../charts.js';
import { num, db } from '../format.js';
import { href } from '../router.js';

export function ResidualsView({ result, version }) {
  const rows = result.adds.map((a) => ({ ...a, ...(a.requantization || {}) }));
  const columns = [
    { key: 'name', label: 'Add', render: (r) => html`<a href=${href('layer', { v: version.id }, r.name)}>${r.name}</a>` },
    { key: 'inputs', label: 'inputs', value: (r) => (r.inputs || []).join(', '), render: (r) => html`<code>${(r.inputs || []).join(' + ')}</code>` },
    { key: 'in_scales', label: 'input scales', value: (r) => (r.input_scales || []).map((s) => num(s)).join(' / ') },
    { key: 'scale_ratio', label: 'scale ratio', numeric: true, render: (r) => html`<b class=${r.scale_ratio > 4 ? 'bad' : ''}>${num(r.scale_ratio, 3)}×</b>` },
    { key: 'output_scale', label: 'output scale', numeric: true, render: (r) => num(r.output_scale) },
    { key: 'sqnr_db', label: 'requant. SQNR', numeric: true, render: (r) => db(r.sqnr_db) },
    { key: 'fp32_sqnr_db', label: 'SQNR vs FP32', numeric: true, value: (r) => (r.against_fp32 ? r.against_fp32.sqnr_db : null),
      render: (r) => (r.against_fp32 ? db(r.against_fp32.sqnr_db) : '–') },
    { key: 'rmse_over_scale', label: 'rmse / scale', numeric: true, render: (r) => num(r.rmse_over_scale, 3) },
    { key: 'max_abs', label: 'max |error|', numeric: true, render: (r) => num(r.max_abs) },
  ];
  return html`<div data-testid="residuals-view">
    <${Card} title=${`Residual Adds · ${result.images} images`}>
      <${DataTable} columns=${columns} rows=${rows} testid="residuals-table" />
      <p class="muted small">A large ratio between the two input scales means the finer input loses resolution when both are
        requantized onto the output grid; rmse/scale near 0.29 is pure rounding.</p>
    </${Card}>
    <${Card} title="Input scale ratio per Add">
      <${Plot} figure=${barFigure(rows.map((r) => r.name), [{ name: 'larger / smaller input scale', values: rows.map((r) => r.scale_ratio), color: colors.fp32 }], { yTitle: 'ratio' })} height=${260} />
    </${Card}>
  </div>`;
}

export function ResidualsPage({ version }) {
  const [limit, setLimit] = useState(200);
  const [result, setResult] = useState(null);
  const job = useJob((res) => setResult(res));
  const run = () => job.run({ kind: 'residuals', version: version.id, limit });
  useEffect(() => {
    setResult(null);
    run();
  }, [version.id]);
  return html`<div>
    <div class="page-head">
      <div><h1>Residual connections <small class="muted">${version.model} · v${version.id}</small></h1></div>
      <div class="head-actions">
        <label>images <input type="number" class="num-input" min="1" value=${limit} onChange=${(e) => setLimit(Number(e.currentTarget.value))} /></label>
        <button class="btn primary" disabled=${job.running} onClick=${run} data-testid="run-residuals">Measure</button>
      </div>
    </div>
    <${JobStrip} job=${job} label="residuals" />
    ${result ? html`<${ResidualsView} result=${result} version=${version} />` : html`<${Card}><${Empty}>Measure the Adds over the first ${limit} images (a background job).</${Empty}></${Card}>`}
  </div>`;
}
