// Quantize: qplay's post-training quantization (docs/QUANTIZE.md) as a form; the job makes a
// new model with its own base version.
import { html } from '../html.js';
import { useState } from 'preact/hooks';
import { useJob } from '../hooks.js';
import { Card, JobStrip } from '../components.js';
import { navigate } from '../router.js';
import { refreshSession, refreshVersions } from '../app.js';

const DEFAULTS = {
  name: '', method: 'minmax', percentile: 99.99, act: 'uint8', weights: 'int8', per_channel: false,
  symmetric_act: false, wbits: 8, abits: 8, weight_range: 'minmax', rounding: 'nearest',
  equalize: false, bias_correction: false, calib_count: 1000, seed: 0, exclude: '',
};

function Field({ label, help, children }) {
  return html`<label class="field"><span class="field-label">${label}</span>${children}${help ? html`<span class="field-help">${help}</span>` : null}</label>`;
}

export function QuantizeForm({ form, set, disabled, onSubmit }) {
  const sel = (key, options) => html`<select value=${form[key]} onChange=${(e) => set(key, e.currentTarget.value)} name=${key}>
    ${options.map((o) => html`<option value=${o}>${o}</option>`)}</select>`;
  const check = (key) => html`<input type="checkbox" checked=${form[key]} onChange=${(e) => set(key, e.currentTarget.checked)} name=${key} />`;
  const number = (key, attrs = {}) => html`<input type="number" class="num-input" value=${form[key]} ...${attrs}
    onChange=${(e) => set(key, Number(e.currentTarget.value))} name=${key} />`;
  return html`<form class="form-grid" onSubmit=${(e) => { e.preventDefault(); onSubmit(); }} data-testid="quantize-form">
    <${Field} label="new model name" help="file stem; empty: chosen by the server">
      <input value=${form.name} placeholder="e.g. resnet8_w4" onInput=${(e) => set('name', e.currentTarget.value)} name="name" /></${Field}>
    <${Field} label="activation ranges" help="how calibration statistics become [lo, hi]">${sel('method', ['minmax', 'percentile', 'entropy', 'mse'])}</${Field}>
    <${Field} label="percentile" help="for the percentile method">${number('percentile', { step: 'any', min: 50, max: 100, disabled: form.method !== 'percentile' })}</${Field}>
    <${Field} label="activation type">${sel('act', ['uint8', 'int8'])}</${Field}>
    <${Field} label="weight type" help="int8: symmetric, uint8: asymmetric">${sel('weights', ['int8', 'uint8'])}</${Field}>
    <${Field} label="activation bits">${number('abits', { min: 2, max: 8 })}</${Field}>
    <${Field} label="weight bits">${number('wbits', { min: 2, max: 8 })}</${Field}>
    <${Field} label="weight ranges">${sel('weight_range', ['minmax', 'mse'])}</${Field}>
    <${Field} label="rounding">${sel('rounding', ['nearest', 'gptq'])}</${Field}>
    <${Field} label="calibration images" help="stratified sample of the training data">${number('calib_count', { min: 10, step: 10 })}</${Field}>
    <${Field} label="seed" help="0: each class's first images">${number('seed', { min: 0 })}</${Field}>
    <${Field} label="exclude nodes" help="comma-separated node names kept in FP32">
      <input value=${form.exclude} placeholder="conv2d, dense" onInput=${(e) => set('exclude', e.currentTarget.value)} name="exclude" /></${Field}>
    <div class="checks">
      <label>${check('per_channel')} per-channel weights</label>
      <label>${check('symmetric_act')} symmetric activations</label>
      <label>${check('equalize')} cross-layer equalization</label>
      <label>${check('bias_correction')} bias correction</label>
    </div>
    <div class="form-actions"><button class="btn primary" type="submit" disabled=${disabled} data-testid="run-quantize">Quantize</button></div>
  </form>`;
}

export function QuantizePage({ session }) {
  const fp32Models = session.models.filter((m) => m.kind === 'fp32');
  const [model, setModel] = useState(session.fp32_model || (fp32Models[0] && fp32Models[0].id));
  const [form, setForm] = useState(DEFAULTS);
  const [made, setMade] = useState(null);
  const set = (key, value) => setForm({ ...form, [key]: value });
  const job = useJob(async (res) => {
    setMade(res);
    await refreshSession();
    await refreshVersions();
  });
  const submit = () => {
    const options = { ...form, exclude: form.exclude.split(',').map((s) => s.trim()).filter(Boolean) };
    if (!options.name) delete options.name;
    if (options.method !== 'percentile') delete options.percentile;
    job.run({ kind: 'quantize', model, options });
  };
  return html`<div>
    <div class="page-head"><div><h1>Quantize</h1>
      <div class="muted">Post-training quantization of an FP32 model into a new QDQ model (docs/QUANTIZE.md).</div></div></div>
    <${Card} title="Options">
      <div class="row"><label>FP32 model <select value=${model} onChange=${(e) => setModel(e.currentTarget.value)} data-testid="quantize-model">
        ${fp32Models.map((m) => html`<option value=${m.id}>${m.id}</option>`)}</select></label></div>
      <${QuantizeForm} form=${form} set=${set} disabled=${job.running} onSubmit=${submit} />
      <${JobStrip} job=${job} label="quantization" />
      ${made ? html`<div class="notice good" data-testid="quantize-result">Made model <b>${made.model}</b> (version v${made.version}).
        <button class="btn small primary" onClick=${() => navigate('layers', { v: made.version })}>Open it</button></div>` : null}
    </${Card}>
  </div>`;
}
