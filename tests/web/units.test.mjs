// Unit tests of the web UI's plain-data modules (no browser, no server): URL routing, number
// formatting, the /quant helpers and the chart figure builders. ctest: web_units.
import test from 'node:test';
import assert from 'node:assert/strict';

const web = new URL('../../web/src/', import.meta.url);
const { parseHash, href } = await import(new URL('router.js', web));
const { num, db, pct, finite } = await import(new URL('format.js', web));
const { quantTensors, qrange, paramsSummary } = await import(new URL('quant.js', web));
const { histogramFigure, sqnrFigure, channelRangeFigure, heatmapFigure } = await import(new URL('charts.js', web));

test('hash routes round-trip through href and parseHash', () => {
  const h = href('layer', { v: 3, image: 7, empty: '' }, 'conv2d_1');
  assert.equal(h, '#/layer/conv2d_1?v=3&image=7');
  assert.deepEqual(parseHash(h), { view: 'layer', arg: 'conv2d_1', params: { v: '3', image: '7' } });
  assert.deepEqual(parseHash(href('edit', { v: 5, layer: 'a b/c' })).params, { v: '5', layer: 'a b/c' });
  assert.deepEqual(parseHash(''), { view: 'graph', arg: null, params: {} });
});

test('numbers are formatted for tables', () => {
  assert.equal(num(0.0312345), '0.03123');
  assert.equal(num(1.5e-5), '1.50e-5');
  assert.equal(num('inf'), '∞');
  assert.equal(num(null), '–');
  assert.equal(db(33.141), '33.14 dB');
  assert.equal(pct(0.875), '87.50%');
  assert.equal(finite('inf'), 120);
  assert.equal(finite(null), null);
});

test('quantization parameters: code ranges and summaries', () => {
  const act = { tensor: 'activation', dtype: 'uint8', bits: 8, scales: [0.05], zero_points: [3] };
  const w4 = { tensor: 'w', dtype: 'int8', bits: 4, scales: [0.1, 0.3, 0.2], zero_points: [0, 0, 0] };
  assert.deepEqual(qrange(act), [0, 255]);
  assert.deepEqual(qrange(w4), [-8, 7]);
  assert.deepEqual(qrange({ ...w4, qmin: -7, qmax: 7 }), [-7, 7]);
  assert.equal(paramsSummary(act), 's=0.05 z=3');
  assert.equal(paramsSummary(w4, 'scale'), '0.1…0.3 (3 ch)');
  assert.equal(paramsSummary(w4, 'zero_point'), '0 ×3');
  assert.deepEqual(quantTensors({ tensors: [act] }), [act]);
  assert.deepEqual(quantTensors([w4]), [w4]);
});

test('histogram figure: FP32 bars, dequantized outline, clip bounds, grid only when coarse', () => {
  const edges = [0, 1, 2, 3, 4];
  const coarse = {
    edges,
    float: { counts: [5, 4, 3, 2] },
    dequantized: { counts: [6, 0, 4, 2] },
    grid: { qmin: 0, qmax: 3, scales: [1], zero_points: [0], clip_min: [0], clip_max: [3] },
  };
  const fig = histogramFigure(coarse, { title: 't (dotted: grid, dashed: clip bounds)' });
  assert.equal(fig.data.length, 2);
  assert.equal(fig.data[0].type, 'bar');
  assert.deepEqual(fig.data[1].x, [0, 1, 1, 2, 2, 3, 3, 4]);
  assert.deepEqual(fig.data[1].y, [6, 6, null, null, 4, 4, 2, 2], 'zero counts are gaps on a log axis');
  const dashed = fig.layout.shapes.filter((s) => s.line.dash === 'dash');
  const dotted = fig.layout.shapes.filter((s) => s.line.dash === 'dot');
  assert.deepEqual(dashed.map((s) => s.x0), [0, 3]);
  assert.deepEqual(dotted.map((s) => s.x0), [0, 1, 2, 3]);
  const fine = { ...coarse, grid: { ...coarse.grid, qmax: 255, scales: [0.01], clip_max: [2.55] } };
  const fineFig = histogramFigure(fine, { title: 't (dotted: grid, dashed: clip bounds)' });
  assert.equal(fineFig.layout.shapes.filter((s) => s.line.dash === 'dot').length, 0);
  assert.match(fineFig.layout.title, /too fine to draw/);
  assert.equal(histogramFigure(null), null);
});

test('SQNR, channel range and heatmap figures', () => {
  const layers = [
    { layer: 'conv2d', accumulated: { sqnr_db: 'inf' }, isolated: { sqnr_db: 40 } },
    { layer: 'dense', accumulated: { sqnr_db: 20 }, isolated: null },
  ];
  const fig = sqnrFigure(layers, { reference: [{ layer: 'dense', accumulated: { sqnr_db: 25 } }] });
  assert.deepEqual(fig.data[0].y, [120, 20]);
  assert.deepEqual(fig.data[1].y, [40, null]);
  assert.deepEqual(fig.data[2].y, [null, 25]);
  const ranges = channelRangeFigure([{ channel: 0, min: -1, max: 2, clip_min: -1.5, clip_max: 1.5 }]);
  assert.deepEqual(ranges.data[0].base, [-1]);
  assert.deepEqual(ranges.data[0].y, [3]);
  const heat = heatmapFigure({ rows: 2, cols: 2, values: [1, -3, 2, 0] });
  assert.deepEqual(heat.data[0].z, [[1, -3], [2, 0]]);
  assert.equal(heat.data[0].zmax, 3);
  assert.equal(heat.data[0].zmin, -3);
});
