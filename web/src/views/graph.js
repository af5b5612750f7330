// Model graph: a Netron-like layered layout (dagre) of the ONNX nodes. Q/DQ nodes carry their
// scale and zero point; nodes that belong to a layer open that layer's detail.
import { html } from '../html.js';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import dagre from 'dagre';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Card, Pending } from '../components.js';
import { navigate } from '../router.js';
import { quantTensors, paramsSummary } from '../quant.js';

const OP_COLORS = {
  Conv: '#3b6ea5', Gemm: '#3b6ea5', MatMul: '#3b6ea5', QLinearConv: '#3b6ea5', QLinearMatMul: '#3b6ea5',
  Relu: '#8c4f9f', Clip: '#8c4f9f', LeakyRelu: '#8c4f9f', Sigmoid: '#8c4f9f', Softmax: '#8c4f9f',
  Add: '#2f7d5b', Sub: '#2f7d5b', Mul: '#2f7d5b', Div: '#2f7d5b',
  QuantizeLinear: '#c2702a', DequantizeLinear: '#b8891f',
  AveragePool: '#5b6770', MaxPool: '#5b6770', GlobalAveragePool: '#5b6770', BatchNormalization: '#6b5b95',
};

// For each Q/DQ node, the quantized tensor its parameters belong to (as /quant names it):
// Q reads the float value; DQ reads a Q output (→ that Q's input) or a weight initializer.
export function qdqTensorOf(node, producers) {
  if (node.op_type === 'QuantizeLinear') return node.inputs[0];
  if (node.op_type === 'DequantizeLinear') {
    const p = producers.get(node.inputs[0]);
    if (p && p.op_type === 'QuantizeLinear') return p.inputs[0];
    return node.inputs[0];
  }
  return null;
}

export function layoutGraph(graph, quantByTensor) {
  // Nodes of one layer sit in a cluster (a dagre compound node) drawn behind them.
  const g = new dagre.graphlib.Graph({ compound: true });
  g.setGraph({ rankdir: 'TB', nodesep: 18, ranksep: 30, marginx: 20, marginy: 24 });
  g.setDefaultEdgeLabel(() => ({}));
  const producers = new Map();
  for (const n of graph.nodes) for (const o of n.outputs) producers.set(o, n);
  const initializers = new Set((graph.initializers || []).map((i) => i.name));
  const boxes = [];
  const inputNames = (graph.inputs || []).map((i) => (typeof i === 'string' ? i : i.name));
  for (const name of inputNames) {
    if (initializers.has(name)) continue;
    const box = { id: `input:${name}`, kind: 'io', title: 'input', sub: name, width: Math.max(90, name.length * 7 + 24), height: 34 };
    boxes.push(box);
    g.setNode(box.id, box);
  }
  graph.nodes.forEach((n, i) => {
    const id = `node:${i}:${n.name}`;
    const tensor = qdqTensorOf(n, producers);
    const q = tensor ? quantByTensor.get(tensor) : null;
    const sub = q ? paramsSummary(q) : n.layer && !['QuantizeLinear', 'DequantizeLinear'].includes(n.op_type) ? n.layer : null;
    const text = [n.op_type, sub || ''];
    const width = Math.max(96, ...text.map((t) => t.length * 6.6 + 24));
    const box = { id, kind: 'op', node: n, title: n.op_type, sub, tensor, quant: q, width, height: sub ? 42 : 30 };
    boxes.push(box);
    g.setNode(id, box);
    if (n.layer) {
      const cluster = `layer:${n.layer}`;
      if (!g.hasNode(cluster)) g.setNode(cluster, { layer: n.layer, paddingTop: 18, paddingLeft: 8, paddingRight: 8, paddingBottom: 8 });
      g.setParent(id, cluster);
    }
    n.__id = id;
  });
  const outputNames = (graph.outputs || []).map((o) => (typeof o === 'string' ? o : o.name));
  for (const name of outputNames) {
    const box = { id: `output:${name}`, kind: 'io', title: 'output', sub: name, width: Math.max(90, name.length * 7 + 24), height: 34 };
    boxes.push(box);
    g.setNode(box.id, box);
  }
  const edges = [];
  for (const n of graph.nodes) {
    for (const input of n.inputs) {
      if (!input || initializers.has(input)) continue;
      const p = producers.get(input);
      const from = p ? p.__id : inputNames.includes(input) ? `input:${input}` : null;
      if (from) {
        g.setEdge(from, n.__id, { value: input });
        edges.push({ from, to: n.__id, value: input });
      }
    }
  }
  for (const name of outputNames) {
    const p = producers.get(name);
    if (p) {
      g.setEdge(p.__id, `output:${name}`, { value: name });
      edges.push({ from: p.__id, to: `output:${name}`, value: name });
    }
  }
  dagre.layout(g);
  const placed = boxes.map((b) => ({ ...b, ...g.node(b.id) }));
  const clusters = g.nodes().filter((id) => id.startsWith('layer:')).map((id) => ({ id, ...g.node(id) }));
  const lines = g.edges().map((e) => ({ ...e, points: g.edge(e).points, value: g.edge(e).value }));
  const { width, height } = g.graph();
  return { boxes: placed, lines, clusters, width, height };
}

function GraphCanvas({ layout, selected, onSelect, onOpen }) {
  const [view, setView] = useState({ x: 0, y: 0, k: 1 });
  const drag = useRef(null);
  const svg = useRef(null);
  const onWheel = (e) => {
    e.preventDefault();
    const rect = svg.current.getBoundingClientRect();
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    const k = Math.min(3, Math.max(0.15, view.k * Math.exp(-e.deltaY * 0.0015)));
    setView({ k, x: mx - ((mx - view.x) * k) / view.k, y: my - ((my - view.y) * k) / view.k });
  };
  const onDown = (e) => {
    drag.current = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
  };
  const onMove = (e) => {
    const d = drag.current;
    if (!d) return;
    if (Math.abs(e.clientX - d.x) + Math.abs(e.clientY - d.y) > 3) d.moved = true;
    setView({ ...view, x: d.vx + e.clientX - d.x, y: d.vy + e.clientY - d.y });
  };
  const onUp = () => {
    setTimeout(() => (drag.current = null), 0);
  };
  const fit = () => {
    const rect = svg.current.getBoundingClientRect();
    const k = Math.min(1.2, rect.width / layout.width, rect.height / layout.height);
    setView({ k, x: (rect.width - layout.width * k) / 2, y: 10 });
  };
  // First view: the top of the graph at a readable size, centred across.
  useEffect(() => {
    const rect = svg.current.getBoundingClientRect();
    const k = Math.max(0.5, Math.min(1, rect.width / layout.width));
    setView({ k, x: (rect.width - layout.width * k) / 2, y: 36 });
  }, [layout]);
  const path = (pts) => pts.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ');
  return html`<div class="graph-canvas">
    <div class="graph-tools">
      <button class="btn small" onClick=${() => setView({ ...view, k: Math.min(3, view.k * 1.25) })}>+</button>
      <button class="btn small" onClick=${() => setView({ ...view, k: Math.max(0.15, view.k / 1.25) })}>−</button>
      <button class="btn small" onClick=${fit}>Fit</button>
      <button class="btn small" onClick=${() => setView({ x: 0, y: 0, k: 1 })}>1:1</button>
    </div>
    <svg ref=${svg} class="graph-svg" onWheel=${onWheel} onMouseDown=${onDown} onMouseMove=${onMove} onMouseUp=${onUp} onMouseLeave=${onUp}>
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
        <path d="M 0 0 L 10 5 L 0 10 z" fill="#8a94a0" /></marker></defs>
      <g transform=${`translate(${view.x},${view.y}) scale(${view.k})`}>
        ${layout.clusters.map((c) => html`<g class="gcluster" onDblClick=${() => onOpen && onOpen({ node: { layer: c.layer } })}>
          <rect x=${c.x - c.width / 2} y=${c.y - c.height / 2} width=${c.width} height=${c.height} rx="8" />
          <text x=${c.x - c.width / 2 + 6} y=${c.y - c.height / 2 - 4}>${c.layer}</text></g>`)}
        ${layout.lines.map((l) => html`<path class="edge" d=${path(l.points)} marker-end="url(#arrow)"><title>${l.value}</title></path>`)}
        ${layout.boxes.map((b) => {
          const color = b.kind === 'io' ? '#1f2933' : OP_COLORS[b.title] || '#5b6770';
          const isSel = selected && selected.id === b.id;
          const edited = b.quant && b.quant.edited;
          return html`<g class="gnode ${b.node && b.node.layer ? 'has-layer' : ''} ${isSel ? 'selected' : ''} ${edited ? 'edited' : ''}"
              transform=${`translate(${b.x - b.width / 2},${b.y - b.height / 2})`} data-node=${b.node ? b.node.name : b.id}
              onClick=${() => !(drag.current && drag.current.moved) && onSelect(b)}
              onDblClick=${() => onOpen && onOpen(b)}>
            <rect width=${b.width} height=${b.height} rx="5" fill=${edited ? '#fff6d6' : '#fff'} stroke=${color} stroke-width=${isSel ? 3 : 1.4} />
            <rect width=${b.width} height="17" rx="5" fill=${color} />
            <rect y="12" width=${b.width} height="5" fill=${color} />
            <text x=${b.width / 2} y="12.5" class="gtitle">${b.title}</text>
            ${b.sub ? html`<text x=${b.width / 2} y=${b.kind === 'io' ? 29 : 33} class="gsub">${b.sub}</text>` : null}
            <title>${b.node ? `${b.node.name}${b.node.layer ? ` (layer ${b.node.layer})` : ''}${edited ? ' — edited in this version' : ''}` : b.sub}</title>
          </g>`;
        })}
      </g>
    </svg>
  </div>`;
}

function NodePanel({ box, version }) {
  if (!box) return html`<p class="muted">Click a node to see its inputs, outputs and quantization parameters;
    double-click a node of a layer to open the layer's detail. Drag to pan, wheel to zoom.</p>`;
  const n = box.node;
  if (!n) return html`<div><h3>${box.title}</h3><code>${box.sub}</code></div>`;
  return html`<div class="node-panel">
    <h3>${n.op_type} <small class="muted">${n.name}</small></h3>
    ${n.layer ? html`<p><a class="btn small primary" href=${`#/layer/${encodeURIComponent(n.layer)}?v=${version.id}`} data-testid="open-layer">Open layer ${n.layer} →</a></p>` : null}
    ${box.quant ? html`<table class="kv">
      <tr><th>tensor</th><td><code>${box.quant.tensor}</code></td></tr>
      <tr><th>role</th><td>${box.quant.role}</td></tr>
      <tr><th>dtype</th><td>${box.quant.dtype} (${box.quant.bits} bits)</td></tr>
      <tr><th>scale</th><td>${paramsSummary(box.quant, 'scale')}</td></tr>
      <tr><th>zero point</th><td>${paramsSummary(box.quant, 'zero_point')}</td></tr>
    </table>` : null}
    <h4>inputs</h4><ul class="plain">${n.inputs.map((i) => html`<li><code>${i || '(none)'}</code></li>`)}</ul>
    <h4>outputs</h4><ul class="plain">${n.outputs.map((o) => html`<li><code>${o}</code></li>`)}</ul>
    ${n.attributes && Object.keys(n.attributes).length ? html`<h4>attributes</h4><table class="kv">
      ${Object.entries(n.attributes).map(([k, v]) => html`<tr><th>${k}</th><td><code>${JSON.stringify(v)}</code></td></tr>`)}</table>` : null}
  </div>`;
}

export function GraphView({ graph, quant, version }) {
  const [selected, setSelected] = useState(null);
  const layout = useMemo(() => {
    const byTensor = new Map(quantTensors(quant).map((q) => [q.tensor, q]));
    return layoutGraph(graph, byTensor);
  }, [graph, quant]);
  const select = (b) => {
    setSelected(b);
  };
  const counts = {};
  for (const n of graph.nodes) counts[n.op_type] = (counts[n.op_type] || 0) + 1;
  return html`<div class="graph-layout">
    <${Card} title=${`${version.model} · v${version.id}`} class="graph-card"
      actions=${html`<span class="muted">${graph.nodes.length} nodes · ${Object.entries(counts).map(([k, c]) => `${k} ${c}`).join(' · ')}
        ${(version.edits || []).length ? ' · yellow: parameters edited in this version' : ''}</span>`}>
      <${GraphCanvas} layout=${layout} selected=${selected} onSelect=${select}
        onOpen=${(b) => b.node && b.node.layer && navigate('layer', { v: version.id }, b.node.layer)} />
    </${Card}>
    <${Card} title="Node" class="graph-side">
      <${NodePanel} box=${selected} version=${version} />
    </${Card}>
  </div>`;
}

export function GraphPage({ version }) {
  const graph = useApi(() => api.graph(version.model), [version.model]);
  const quant = useApi(() => api.quant(version.id), [version.id]);
  if (!graph.data) return html`<${Pending} query=${graph} what="the graph" />`;
  if (!quant.data) return html`<${Pending} query=${quant} what="the quantization parameters" />`;
  return html`<${GraphView} graph=${graph.data} quant=${quant.data} version=${version} />`;
}
