// The one module that knows Plotly. Views build figures with the functions below (plain
// {data, layout} objects) and render them with <Plot figure=${...}/>; theme, fonts and
// colours are set here so every chart looks the same.
import { html } from './html.js';
import { useEffect, useRef } from 'preact/hooks';
import { finite } from './format.js';

export const colors = {
  fp32: '#4c78a8',
  quantized: '#f58518',
  accent: '#54a24b',
  bad: '#e45756',
  grid: '#9d9d9d',
  muted: '#bab0ac',
};

let plotlyPromise = null;
// Plotly (4.8 MB) is loaded the first time a chart is drawn, not with the page.
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyPromise) {
    plotlyPromise = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = 'vendor/plotly.min.js';
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => reject(new Error('cannot load vendor/plotly.min.js'));
      document.head.appendChild(s);
    });
  }
  return plotlyPromise;
}

const baseLayout = {
  font: { family: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', size: 12, color: '#1f2933' },
  paper_bgcolor: 'rgba(0,0,0,0)',
  plot_bgcolor: '#ffffff',
  margin: { l: 56, r: 16, t: 44, b: 48 },
  legend: { orientation: 'h', y: 1.12, x: 0 },
  xaxis: { gridcolor: '#eef1f4', zerolinecolor: '#d5dae0', automargin: true },
  yaxis: { gridcolor: '#eef1f4', zerolinecolor: '#d5dae0', automargin: true },
  hoverlabel: { font: { size: 12 } },
};

function mergeLayout(layout) {
  return {
    ...baseLayout,
    ...layout,
    xaxis: { ...baseLayout.xaxis, ...(layout.xaxis || {}) },
    yaxis: { ...baseLayout.yaxis, ...(layout.yaxis || {}) },
    title: undefined, // shown as an HTML caption above the plot (see Plot)
    legend: { ...baseLayout.legend, ...(layout.legend || {}) },
  };
}

// onClick(point) gets Plotly's clicked point ({x, y, curveNumber, ...}).
export function Plot({ figure, height = 300, testid, onClick }) {
  const ref = useRef(null);
  const clickRef = useRef(onClick);
  clickRef.current = onClick;
  useEffect(() => {
    let live = true;
    if (!figure) return undefined;
    loadPlotly().then((Plotly) => {
      if (!live || !ref.current) return;
      Plotly.react(ref.current, figure.data, mergeLayout({ height, ...figure.layout }), {
        displaylogo: false,
        responsive: true,
        modeBarButtonsToRemove: ['select2d', 'lasso2d', 'autoScale2d'],
      }).then((el) => {
        if (el.__qplayClick) return;
        el.__qplayClick = true;
        el.on('plotly_click', (ev) => clickRef.current && ev.points && ev.points[0] && clickRef.current(ev.points[0]));
      });
    });
    return () => {
      live = false;
    };
  }, [figure, height]);
  useEffect(() => () => window.Plotly && ref.current && window.Plotly.purge(ref.current), []);
  const caption = figure && figure.layout && figure.layout.title;
  return html`<div class="plot-wrap" data-testid=${testid}>
    ${caption ? html`<div class="plot-caption">${caption}</div>` : null}
    <div class="plot" ref=${ref} style=${{ minHeight: `${height}px` }}></div>
  </div>`;
}

// ---- figure builders (plain data in, figure out) ----

function centers(edges) {
  const c = [];
  for (let i = 0; i + 1 < edges.length; i++) c.push((edges[i] + edges[i + 1]) / 2);
  return c;
}

function widths(edges) {
  const w = [];
  for (let i = 0; i + 1 < edges.length; i++) w.push(edges[i + 1] - edges[i]);
  return w;
}

function vline(x, color, dash, label) {
  return {
    type: 'line', xref: 'x', yref: 'paper', x0: x, x1: x, y0: 0, y1: 1,
    line: { color, width: 1.5, dash },
    label: label ? { text: label, textposition: 'end', font: { size: 10, color } } : undefined,
  };
}

// A histogram as docs/ANALYSIS.md shapes it: {edges, float:{counts}, dequantized:{counts},
// grid:{scales, zero_points, qmin, qmax, clip_min, clip_max}}. Draws FP32 and dequantized
// counts on shared bins, the clip bounds, and the quantization grid when it is coarse
// enough to be seen.
export function histogramFigure(hist, { title, logY = true } = {}) {
  if (!hist || !hist.edges) return null;
  const x = centers(hist.edges);
  const w = widths(hist.edges);
  const data = [];
  if (hist.float && hist.float.counts)
    data.push({ type: 'bar', name: 'FP32', x, y: hist.float.counts, width: w, marker: { color: colors.fp32 }, opacity: 0.55 });
  if (hist.dequantized && hist.dequantized.counts) {
    // Drawn as a step outline over the FP32 bars, so both stay readable where they agree.
    const edges = hist.edges;
    const counts = hist.dequantized.counts;
    const sx = [];
    const sy = [];
    counts.forEach((c, i) => {
      sx.push(edges[i], edges[i + 1]);
      sy.push(c, c);
    });
    data.push({ type: 'scatter', mode: 'lines', name: 'dequantized', x: sx, y: sy.map((c) => (logY && c === 0 ? null : c)),
      line: { color: colors.quantized, width: 1.8 }, connectgaps: false, hovertemplate: '%{y}<extra>dequantized</extra>' });
  }
  const shapes = [];
  const g = hist.grid;
  if (g && g.clip_min && g.clip_max && g.clip_min.length === 1) {
    shapes.push(vline(g.clip_min[0], colors.bad, 'dash', 'clip min'));
    shapes.push(vline(g.clip_max[0], colors.bad, 'dash', 'clip max'));
    const s = g.scales[0];
    const z = g.zero_points[0];
    const lo = hist.edges[0];
    const hi = hist.edges[hist.edges.length - 1];
    const steps = (hi - lo) / s;
    if (steps <= 80) {
      for (let q = g.qmin; q <= g.qmax; q++) {
        const r = s * (q - z);
        if (r >= lo && r <= hi) shapes.push({ ...vline(r, colors.grid, 'dot'), line: { color: colors.grid, width: 0.6, dash: 'dot' } });
      }
    } else if (title) {
      title = `${title.replace(/ \(dotted: grid, /, ' (')} — grid step ${Number(s.toPrecision(3))}: ${Math.round(steps)} codes in view, too fine to draw`;
    }
  }
  return {
    data,
    layout: {
      title,
      barmode: 'overlay',
      bargap: 0,
      shapes,
      xaxis: { title: { text: 'value' } },
      yaxis: { title: { text: 'count' }, type: logY ? 'log' : 'linear', dtick: logY ? 1 : undefined, exponentformat: 'power' },
    },
  };
}

// Per-channel weight ranges: [{channel, min, max, scale, zero_point}] → min..max bars per
// channel and, when given, the grid's clip bounds per channel.
export function channelRangeFigure(channels, { title } = {}) {
  if (!channels || !channels.length) return null;
  const x = channels.map((c) => c.channel);
  const data = [
    {
      type: 'bar', name: 'weight range', x, base: channels.map((c) => c.min),
      y: channels.map((c) => c.max - c.min), marker: { color: colors.fp32 },
      hovertemplate: 'channel %{x}<br>min %{base:.4g}<br>max %{customdata:.4g}<extra></extra>',
      customdata: channels.map((c) => c.max),
    },
  ];
  if (channels[0].clip_min !== undefined) {
    data.push({ type: 'scatter', mode: 'markers', name: 'clip bounds', x: [...x, ...x],
      y: [...channels.map((c) => c.clip_min), ...channels.map((c) => c.clip_max)],
      marker: { symbol: 'line-ew-open', size: 10, color: colors.bad } });
  }
  return {
    data,
    layout: { title, xaxis: { title: { text: 'output channel' } }, yaxis: { title: { text: 'value' } }, bargap: 0.15 },
  };
}

export function heatmapFigure(heat, { title, xTitle = 'column', yTitle = 'row', colorscale = 'RdBu', symmetric = true, text } = {}) {
  if (!heat || !heat.values) return null;
  const rows = heat.rows || heat.values.length;
  const cols = heat.cols || (heat.values[0] ? heat.values[0].length : 0);
  // Accept row-major flat arrays as well as nested rows.
  const z = Array.isArray(heat.values[0]) ? heat.values
    : Array.from({ length: rows }, (_, r) => heat.values.slice(r * cols, (r + 1) * cols));
  let zmax;
  if (symmetric) {
    zmax = 0;
    for (const row of z) for (const v of row) zmax = Math.max(zmax, Math.abs(v));
  }
  return {
    data: [{
      type: 'heatmap', z, colorscale: colorscale === 'Blues' ? [[0, '#f7fbff'], [0.5, '#6baed6'], [1, '#08306b']] : colorscale,
      reversescale: colorscale === 'RdBu',
      zmin: symmetric ? -zmax : undefined, zmax: symmetric ? zmax : undefined,
      x: heat.x, y: heat.y, text, texttemplate: text ? '%{text}' : undefined,
    }],
    layout: { title, xaxis: { title: { text: xTitle } }, yaxis: { title: { text: yTitle }, autorange: 'reversed' } },
  };
}

// Grouped horizontal-free bar chart: series = [{name, values, color}], categories on x.
export function barFigure(categories, series, { title, yTitle, yRange, percent = false } = {}) {
  return {
    data: series.map((s) => ({
      type: 'bar', name: s.name, x: categories, y: s.values.map((v) => (percent && v !== null ? 100 * v : v)),
      marker: { color: s.color },
      hovertemplate: percent ? '%{x}: %{y:.2f}%<extra>' + s.name + '</extra>' : undefined,
    })),
    layout: {
      title, barmode: 'group',
      yaxis: { title: { text: yTitle || '' }, range: yRange, ticksuffix: percent ? '%' : '' },
      xaxis: { type: 'category' },
    },
  };
}

// Per-layer SQNR through the network: layers = [{layer, accumulated:{sqnr_db}, isolated:{sqnr_db}}].
// With `reference` (the same shape, e.g. the base version) its accumulated SQNR is drawn dashed.
export function sqnrFigure(layers, { title = 'SQNR per layer (higher is better)', reference, referenceName = 'base' } = {}) {
  if (!layers || !layers.length) return null;
  const names = layers.map((l) => l.layer || l.name);
  const line = (rows, key, name, color, dash) => ({
    type: 'scatter', mode: 'lines+markers', name, x: names,
    y: names.map((n) => {
      const l = rows.find((r) => (r.layer || r.name) === n);
      return l && l[key] ? finite(l[key].sqnr_db) : null;
    }),
    line: { color, width: 2, dash }, marker: { size: dash ? 4 : 7 },
  });
  const data = [line(layers, 'accumulated', 'accumulated', colors.quantized), line(layers, 'isolated', 'isolated', colors.fp32)];
  if (reference && reference.length) data.push(line(reference, 'accumulated', `${referenceName} accumulated`, colors.muted, 'dash'));
  return {
    data,
    layout: { title, yaxis: { title: { text: 'SQNR (dB)' } }, xaxis: { type: 'category', tickangle: -35 } },
  };
}
