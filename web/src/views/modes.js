// Simulate against integer mode for the current version's model: per layer, how many output codes
// the integer-only arithmetic changes and by how much, and how often the top-1 class agrees
// (GET /api/models/{id}/modes, over the server's cached images).
import { html } from '../html.js';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Card, DataTable, Stat, Pending } from '../components.js';
import { Plot, barFigure, colors } from '../charts.js';
import { num, db, pct } from '../format.js';

export function ModesView({ result }) {
  const rows = result.layers.map((l) => ({ ...l, ...(l.integer_vs_simulate || {}) }));
  const columns = [
    { key: 'name', label: 'layer' },
    { key: 'codes', label: 'codes', numeric: true },
    { key: 'differing_codes', label: 'differing', numeric: true },
    { key: 'differing_rate', label: 'share', numeric: true, render: (r) => pct(r.differing_rate, 4) },
    { key: 'max_code_difference', label: 'max |Δcode|', numeric: true },
    { key: 'sqnr_db', label: 'SQNR', numeric: true, render: (r) => db(r.sqnr_db) },
    { key: 'rmse_over_scale', label: 'rmse / scale', numeric: true, render: (r) => num(r.rmse_over_scale, 4) },
  ];
  return html`<div data-testid="modes-view">
    <div class="stats">
      <${Stat} label="simulate accuracy" value=${pct(result.simulate_accuracy)} sub=${`${result.images} images`} />
      <${Stat} label="integer accuracy" value=${pct(result.integer_accuracy)} />
      <${Stat} label="top-1 agreement" value=${`${result.top1_agreement} / ${result.images}`} />
      <${Stat} label="largest output difference" value=${num(result.max_output_difference, 3)} />
    </div>
    <${Card} title="Each layer's output codes, integer mode against simulate mode">
      <${DataTable} columns=${columns} rows=${rows} testid="modes-table" />
      <p class="muted small">Integer mode sums exactly in int32 and requantizes with fixed-point multipliers, as integer-only
        targets do; simulate mode computes in float and rounds once per QuantizeLinear. They differ only where a value lies
        within a rounding error of a half step, and earlier differences propagate.</p>
    </${Card}>
    <${Card} title="Share of differing codes per layer">
      <${Plot} figure=${barFigure(rows.map((r) => r.name), [{ name: 'differing codes', values: rows.map((r) => r.differing_rate), color: colors.quantized }], { percent: true, yTitle: '% of codes' })} height=${260} />
    </${Card}>
  </div>`;
}

export function ModesPage({ version }) {
  const query = useApi(() => api.modes(version.model), [version.model]);
  return html`<div>
    <div class="page-head">
      <div><h1>Simulate vs integer mode <small class="muted">${version.model}</small></h1></div>
      <div class="head-actions"><button class="btn" disabled=${query.loading} onClick=${query.reload}>Reload</button></div>
    </div>
    ${query.data ? html`<${ModesView} result=${query.data} />`
                 : html`<${Card}><${Pending} query=${query} what="both modes over the cached images" /></${Card}>`}
  </div>`;
}
