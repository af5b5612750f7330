// Small building blocks shared by the views. They take plain data and callbacks.
import { html } from './html.js';
import { useMemo, useState } from 'preact/hooks';
import { api } from './api.js';
import { pct } from './format.js';

export function Card({ title, actions, children, class: cls = '', testid }) {
  return html`<section class="card ${cls}" data-testid=${testid}>
    ${title || actions ? html`<header class="card-head"><h2>${title}</h2><div class="card-actions">${actions}</div></header>` : null}
    <div class="card-body">${children}</div>
  </section>`;
}

export function Loading({ what = '' }) {
  return html`<div class="loading"><span class="spinner"></span> Loading${what ? ` ${what}` : ''}…</div>`;
}

// What a view shows while a useApi() result has no data: a spinner, or, once the request
// failed, a pointer to the error banner (the message itself is shown there).
export function Pending({ query, what = '' }) {
  if (query && query.error && !query.loading)
    return html`<div class="empty" data-testid="load-failed">Could not load ${what}: see the message above.</div>`;
  return html`<${Loading} what=${what} />`;
}

export function Empty({ children }) {
  return html`<div class="empty">${children}</div>`;
}

// columns: [{key, label, render(row), value(row) (sort/filter), numeric, title}]
export function DataTable({ columns, rows, filterPlaceholder = 'Filter…', initialSort, onRowClick, rowClass, testid, compact }) {
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState(initialSort || null); // {key, dir}
  const valueOf = (col, row) => (col.value ? col.value(row) : row[col.key]);
  const shown = useMemo(() => {
    let out = rows || [];
    const f = filter.trim().toLowerCase();
    if (f) {
      out = out.filter((row) => columns.some((c) => {
        const v = valueOf(c, row);
        return v !== null && v !== undefined && String(v).toLowerCase().includes(f);
      }));
    }
    if (sort) {
      const col = columns.find((c) => c.key === sort.key);
      if (col) {
        const key = (row) => {
          const v = valueOf(col, row);
          if (v === 'inf') return Infinity;
          if (v === '-inf') return -Infinity;
          return v;
        };
        out = [...out].sort((a, b) => {
          const x = key(a);
          const y = key(b);
          if (x === y) return 0;
          if (x === null || x === undefined) return 1;
          if (y === null || y === undefined) return -1;
          return (x < y ? -1 : 1) * (sort.dir === 'desc' ? -1 : 1);
        });
      }
    }
    return out;
  }, [rows, filter, sort, columns]);
  const clickHead = (col) => {
    if (!sort || sort.key !== col.key) setSort({ key: col.key, dir: col.numeric ? 'desc' : 'asc' });
    else setSort({ key: col.key, dir: sort.dir === 'asc' ? 'desc' : 'asc' });
  };
  return html`<div class="table-wrap" data-testid=${testid}>
    <div class="table-tools">
      <input type="search" class="filter" placeholder=${filterPlaceholder} value=${filter}
        onInput=${(e) => setFilter(e.currentTarget.value)} aria-label="filter rows" />
      <span class="muted">${shown.length} of ${(rows || []).length} rows</span>
    </div>
    <div class="table-scroll">
      <table class="data ${compact ? 'compact' : ''}">
        <thead><tr>${columns.map((c) => html`<th class=${c.numeric ? 'num' : ''} title=${c.title || 'click to sort'}
          onClick=${() => clickHead(c)}>${c.label}${sort && sort.key === c.key ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}</th>`)}</tr></thead>
        <tbody>${shown.map((row, i) => html`<tr key=${i} class=${`${onRowClick ? 'clickable' : ''} ${rowClass ? rowClass(row) : ''}`}
            onClick=${onRowClick ? () => onRowClick(row) : undefined}>
          ${columns.map((c) => html`<td class=${c.numeric ? 'num' : ''}>${c.render ? c.render(row) : valueOf(c, row)}</td>`)}
        </tr>`)}</tbody>
      </table>
    </div>
  </div>`;
}

export function ProgressBar({ progress, state }) {
  const done = progress ? progress.done ?? progress.images_done ?? progress.current ?? 0 : 0;
  const total = progress ? progress.total ?? progress.images ?? 0 : 0;
  const frac = total ? Math.min(1, done / total) : progress && progress.fraction !== undefined ? progress.fraction : 0;
  const label = total ? `${done} / ${total}` : state === 'running' ? 'starting…' : '';
  return html`<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(frac * 100)}>
    <div class="progress-fill" style=${{ width: `${(frac * 100).toFixed(1)}%` }}></div>
    <span class="progress-label">${label}${progress && progress.message ? ` — ${progress.message}` : ''}</span>
  </div>`;
}

// The start / progress / cancel strip of a background job (see hooks.useJob).
export function JobStrip({ job, label = 'job', testid }) {
  if (job.state === 'idle') return null;
  return html`<div class="job-strip" data-testid=${testid} data-state=${job.state}>
    ${job.state === 'running' ? html`<span class="job-label">${label}</span><${ProgressBar} progress=${job.progress} state=${job.state} />
      <button class="btn small" onClick=${job.cancel} data-testid="job-cancel">Cancel</button>` : null}
    ${job.state === 'cancelled' ? html`<span class="muted">${label} cancelled</span>` : null}
    ${job.state === 'error' ? html`<span class="bad">${label} failed (see the message above)</span>` : null}
    ${job.state === 'done' ? html`<span class="good">${label} finished</span>` : null}
  </div>`;
}

export function Thumb({ index, size = 64, label, onClick, selected, title }) {
  return html`<button class="thumb ${selected ? 'selected' : ''}" onClick=${onClick} title=${title || `image ${index}`} data-index=${index}>
    <img src=${api.imageUrl(index)} width=${size} height=${size} alt=${`image ${index}`} loading="lazy" />
    ${label ? html`<span class="thumb-label">${label}</span>` : null}
  </button>`;
}

export function Stat({ label, value, sub, tone }) {
  return html`<div class="stat ${tone || ''}"><div class="stat-value">${value}</div><div class="stat-label">${label}</div>${sub ? html`<div class="stat-sub">${sub}</div>` : null}</div>`;
}

export function AccuracyBadge({ accuracy }) {
  // accuracy: {"<images>": {images, correct, accuracy}} from a version
  if (!accuracy) return html`<span class="muted">–</span>`;
  const keys = Object.keys(accuracy).sort((a, b) => Number(b) - Number(a));
  if (!keys.length) return html`<span class="muted">–</span>`;
  return html`<span>${keys.map((k) => html`<span class="badge" title=${`${accuracy[k].correct}/${accuracy[k].images} images`}>${pct(accuracy[k].accuracy)} <small>@${k}</small></span>`)}</span>`;
}
