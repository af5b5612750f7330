// Edit: change a layer's scale / zero point / bit width or run it in FP32; every edit makes a
// new version (POST /api/versions) and the current image re-runs at once. Evaluate runs as a
// background job with progress and cancel; undo / redo / reset move between versions.
import { html } from '../html.js';
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { useApi, useJob } from '../hooks.js';
import { Card, Pending, JobStrip, AccuracyBadge, Empty } from '../components.js';
import { Plot, sqnrFigure } from '../charts.js';
import { useStore, setState, getState, reportError, versionById } from '../store.js';
import { navigate, href } from '../router.js';
import { num, pct, when } from '../format.js';
import { quantTensors, quantLayers, qrange } from '../quant.js';
import { refreshVersions } from '../app.js';
import { PredictionPanel } from './prediction.js';

const fmtScale = (s) => Number(s.toPrecision(6)).toString();

// One quantized tensor's controls. commit(editString) makes the new version.
function TensorEditor({ q, commit, busy }) {
  const per = q.scales.length > 1;
  const [channel, setChannel] = useState(0);
  const c = per ? Math.min(channel, q.scales.length - 1) : 0;
  const scale = q.scales[c];
  const zp = q.zero_points[c] ?? 0;
  const [qmin, qmax] = qrange(q);
  const [draftScale, setDraftScale] = useState(null);
  const [draftZp, setDraftZp] = useState(null);
  useEffect(() => {
    setDraftScale(null);
    setDraftZp(null);
  }, [scale, zp, q.tensor]);
  const idx = per ? `[${c}]` : '';
  // Log slider over scale/4 .. scale*4 around the current value.
  const toSlider = (s) => Math.log2(s / scale);
  const fromSlider = (t) => scale * 2 ** t;
  const shownScale = draftScale ?? scale;
  const shownZp = draftZp ?? zp;
  const editable = q.role !== 'bias';
  const commitScale = (v) => {
    if (!(v > 0) || !Number.isFinite(v)) return reportError(new Error(`${q.tensor}: a scale must be a finite number greater than 0`));
    if (v !== scale) commit(`${q.tensor}.scale${idx}=${fmtScale(v)}`);
  };
  const commitZp = (z) => {
    if (!Number.isInteger(z)) return reportError(new Error(`${q.tensor}: the zero point must be an integer`));
    if (z !== zp) commit(`${q.tensor}.zero_point${idx}=${z}`);
  };
  return html`<div class="tensor-editor ${q.edited ? 'edited' : ''}" data-tensor=${q.tensor}>
    <div class="te-head">
      <code>${q.tensor}</code> <span class="tag ${q.role}">${q.role}</span>
      <span class="muted small">${q.dtype}, ${q.bits} bits, codes ${qmin}..${qmax}${per ? `, ${q.scales.length} channels (axis ${q.axis})` : ''}</span>
      ${q.edited ? html`<span class="tag edited">edited</span>` : null}
    </div>
    ${!editable ? html`<div class="muted small">int32 bias: follows input and weight scales (not edited directly).</div>` : html`
    ${per ? html`<label class="row">channel
      <select value=${c} onChange=${(e) => setChannel(Number(e.currentTarget.value))}>
        ${q.scales.map((s, i) => html`<option value=${i}>${i} (s=${num(s)})</option>`)}</select></label>` : null}
    <label class="row">scale
      <input type="range" min="-2" max="2" step="0.01" value=${toSlider(shownScale)} disabled=${busy} data-testid="scale-slider"
        onInput=${(e) => setDraftScale(fromSlider(Number(e.currentTarget.value)))}
        onChange=${(e) => commitScale(Number(fmtScale(fromSlider(Number(e.currentTarget.value)))))} />
      <input type="number" class="num-input" step="any" value=${fmtScale(shownScale)} disabled=${busy} data-testid="scale-input"
        onChange=${(e) => commitScale(Number(e.currentTarget.value))} />
    </label>
    <div class="muted small grid-note">grid step ${num(shownScale)} · range [${num(shownScale * (qmin - shownZp))}, ${num(shownScale * (qmax - shownZp))}]</div>
    <label class="row">zero point
      <input type="range" min=${qmin} max=${qmax} step="1" value=${shownZp} disabled=${busy} data-testid="zp-slider"
        onInput=${(e) => setDraftZp(Number(e.currentTarget.value))}
        onChange=${(e) => commitZp(Number(e.currentTarget.value))} />
      <input type="number" class="num-input" step="1" min=${qmin} max=${qmax} value=${shownZp} disabled=${busy} data-testid="zp-input"
        onChange=${(e) => commitZp(Number(e.currentTarget.value))} />
    </label>
    <label class="row">bits
      <select value=${q.bits} disabled=${busy} data-testid="bits-select" onChange=${(e) => commit(`--bits ${q.tensor}=${e.currentTarget.value}`)}>
        ${[8, 7, 6, 5, 4, 3, 2].map((b) => html`<option value=${b}>${b}</option>`)}
      </select>
    </label>`}
  </div>`;
}

function LayerPicker({ layers, current, onPick, tensorsByLayer }) {
  return html`<ul class="layer-picker" data-testid="layer-picker">
    ${layers.map((l) => {
      const edited = (tensorsByLayer.get(l.name) || []).some((t) => t.edited);
      return html`<li><button class=${`${l.name === current ? 'active' : ''}`} onClick=${() => onPick(l.name)} data-layer=${l.name}>
        <span>${l.name}</span><small>${l.kind}${edited ? ' · edited' : ''}</small></button></li>`;
    })}
  </ul>`;
}

export function HistoryTable({ versions, current, model, onPick }) {
  const list = versions.filter((v) => v.model === model).slice().reverse();
  return html`<div class="table-scroll history" data-testid="history">
    <table class="data compact">
      <thead><tr><th>version</th><th>parent</th><th>edits</th><th>accuracy</th></tr></thead>
      <tbody>${list.map((v) => html`<tr class=${`clickable ${String(v.id) === String(current) ? 'current' : ''}`} data-version=${v.id}
          onClick=${() => onPick(v.id)}>
        <td title=${`created ${when(v.created)}`}>v${v.id}${v.parent === null || v.parent === undefined ? html` <span class="tag">base</span>` : null}</td>
        <td>${v.parent === null || v.parent === undefined ? '–' : `v${v.parent}`}</td>
        <td class="edits-cell" title=${(v.edits || []).join('\n')}>${v.edits && v.edits.length ? html`${v.edits.length}: <code>${v.edits[v.edits.length - 1]}</code>` : html`<span class="muted">none</span>`}</td>
        <td><${AccuracyBadge} accuracy=${v.accuracy} /></td>
      </tr>`)}</tbody>
    </table>
  </div>`;
}

export function EditPage({ route, version, model, session, versions }) {
  const store = useStore();
  const image = store.image;
  const quant = useApi(() => api.quant(version.id), [version.id]);
  const result = useApi(() => api.infer(version.id, image), [version.id, image]);
  const baseId = model ? model.base_version : null;
  const isBase = String(baseId) === String(version.id);
  const baseResult = useApi(() => (baseId !== null && !isBase ? api.infer(baseId, image) : null), [baseId, image, isBase]);
  const [busy, setBusy] = useState(false);
  const total = session.data ? session.data.images : 1000;
  const evaluation = useJob(async (res) => {
    setState({ evaluations: { ...getState().evaluations, [version.id]: res } });
    await refreshVersions();
  });

  const layers = quantLayers(quant.data);
  const tensors = quantTensors(quant.data);
  const tensorsByLayer = new Map();
  for (const t of tensors) {
    if (!tensorsByLayer.has(t.layer)) tensorsByLayer.set(t.layer, []);
    tensorsByLayer.get(t.layer).push(t);
  }
  const layer = route.params.layer || (layers[0] && layers[0].name);
  const bypassEdit = `--bypass ${layer}`;
  const bypassed = (version.edits || []).includes(bypassEdit);

  const go = (v, extra = {}) => navigate('edit', { v, ...(layer ? { layer } : {}), ...extra });
  const pushRedo = (items) => setState({ redo: { ...getState().redo, [version.model]: items } });
  const redoStack = store.redo[version.model] || [];

  const create = async (edits, opts) => {
    setBusy(true);
    try {
      const nv = await api.createVersion(version.id, edits, opts);
      await refreshVersions();
      pushRedo([]);
      go(nv.id);
    } catch (e) {
      reportError(e);
    } finally {
      setBusy(false);
    }
  };
  const commit = (edit) => create([edit]);
  const toggleBypass = () => {
    if (!bypassed) create([bypassEdit]);
    else create((version.edits || []).filter((e) => e !== bypassEdit), { replace: true });
  };
  const undo = () => {
    if (version.parent === null || version.parent === undefined) return;
    pushRedo([...redoStack, version.id]);
    go(version.parent);
  };
  const redo = () => {
    if (!redoStack.length) return;
    const target = redoStack[redoStack.length - 1];
    pushRedo(redoStack.slice(0, -1));
    go(target);
  };
  const reset = () => {
    if (!model || String(model.base_version) === String(version.id)) return;
    pushRedo([...redoStack, version.id]);
    go(model.base_version);
  };
  // Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) move through the versions like the buttons.
  useEffect(() => {
    const onKey = (e) => {
      if (!(e.ctrlKey || e.metaKey) || busy) return;
      if (e.target && ['INPUT', 'SELECT', 'TEXTAREA'].includes(e.target.tagName) && e.target.type !== 'range' && e.target.type !== 'checkbox') return;
      const k = e.key.toLowerCase();
      if (k === 'z' && !e.shiftKey) undo();
      else if ((k === 'z' && e.shiftKey) || k === 'y') redo();
      else return;
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });
  const evaluate = (limit) => evaluation.run({ kind: 'evaluate', version: version.id, ...(limit ? { limit } : {}) });
  const lastEval = store.evaluations[version.id];

  return html`<div class="edit-page" data-testid="edit-view">
    <div class="page-head">
      <div><h1>Edit <small class="muted">${version.model} · v${version.id}${version.edits && version.edits.length ? ` · ${version.edits.length} edit(s)` : ' · base'}</small></h1></div>
      <div class="head-actions toolbar">
        <button class="btn" onClick=${undo} disabled=${busy || version.parent === null || version.parent === undefined} data-testid="undo" title="back to the parent version (Ctrl+Z)">↶ Undo</button>
        <button class="btn" onClick=${redo} disabled=${busy || !redoStack.length} data-testid="redo" title="Ctrl+Shift+Z">↷ Redo</button>
        <button class="btn" onClick=${reset} disabled=${busy || !model || String(model.base_version) === String(version.id)} data-testid="reset">Reset</button>
        <a class="btn" href=${api.exportUrl(version.id)} download=${`${version.model}_v${version.id}.onnx`} data-testid="export">⇩ Export ONNX</a>
      </div>
    </div>
    <div class="edit-grid">
      <${Card} title="Layers" class="edit-layers">
        ${quant.data ? html`<${LayerPicker} layers=${layers} current=${layer} tensorsByLayer=${tensorsByLayer}
          onPick=${(l) => go(version.id, { layer: l })} />` : html`<${Pending} query=${quant} what="layers" />`}
      </${Card}>
      <${Card} title=${layer ? `Layer ${layer}` : 'Layer'} class="edit-controls"
          actions=${layer ? html`<a href=${href('layer', { v: version.id, image }, layer)}>histograms →</a>` : null}>
        ${!quant.data ? html`<${Pending} query=${quant} what="tensors" />` : html`
          <label class="row bypass"><input type="checkbox" checked=${bypassed} disabled=${busy} onChange=${toggleBypass} data-testid="bypass" />
            run this layer in FP32 (bypass its quantization)</label>
          ${(tensorsByLayer.get(layer) || []).length ? (tensorsByLayer.get(layer) || []).map((q) => html`<${TensorEditor} key=${q.tensor} q=${q} commit=${commit} busy=${busy} />`)
            : html`<${Empty}>No quantized tensor belongs to this layer${bypassed ? ' (bypassed)' : ''}.</${Empty}>`}
          ${busy ? html`<div class="muted small"><span class="spinner"></span> making the new version…</div>` : null}`}
      </${Card}>
      <div class="edit-side">
        <${Card} title=${`Image ${image}`} actions=${html`<a href=${href('infer', { v: version.id, image })}>change image →</a>`}>
          <div class="infer-head">
            <img class="big-image" src=${api.imageUrl(image)} width="96" height="96" alt="current image" />
            ${result.data ? html`<${PredictionPanel} result=${result.data} classes=${session.data && session.data.classes} />` : html`<${Pending} query=${result} what="the prediction" />`}
          </div>
        </${Card}>
        <${Card} title=${`SQNR per layer on image ${image}`}>
          <${Plot} testid="edit-sqnr" height=${270} onClick=${(p) => go(version.id, { layer: p.x })} figure=${result.data && sqnrFigure(result.data.layers, {
            title: isBase ? '' : `dashed: base v${baseId}`, reference: baseResult.data && baseResult.data.layers, referenceName: `v${baseId}` })} />
        </${Card}>
        <${Card} title="Accuracy" testid="accuracy-card">
          <div class="acc-row">
            <div><div class="muted small">this version</div><div class="acc-value" data-testid="version-accuracy"><${AccuracyBadge} accuracy=${version.accuracy} /></div></div>
            ${model && versionById(model.base_version) && String(model.base_version) !== String(version.id) ? html`<div><div class="muted small">base v${model.base_version}</div><div class="acc-value"><${AccuracyBadge} accuracy=${versionById(model.base_version).accuracy} /></div></div>` : null}
          </div>
          <div class="row gap">
            <button class="btn primary" disabled=${evaluation.running} onClick=${() => evaluate(Math.min(1000, total))} data-testid="evaluate-1000">Evaluate ${Math.min(1000, total).toLocaleString()} images</button>
            ${total > 1000 ? html`<button class="btn" disabled=${evaluation.running} onClick=${() => evaluate(null)} data-testid="evaluate-all">Evaluate all ${total.toLocaleString()}</button>` : null}
          </div>
          <${JobStrip} job=${evaluation} label="evaluation" testid="evaluate-job" />
          ${lastEval ? html`<div class="small" data-testid="last-evaluation">last run: <b>${pct(lastEval.accuracy)}</b> (${lastEval.correct}/${lastEval.images} images)${' · '}${(lastEval.flipped || []).length} flipped vs FP32 · <a href=${href('accuracy', { v: version.id })}>per class →</a></div>` : null}
        </${Card}>
        <${Card} title="Version history">
          <${HistoryTable} versions=${versions} current=${version.id} model=${version.model} onPick=${(v) => go(v)} />
        </${Card}>
      </div>
    </div>
  </div>`;
}
