// Accuracy: per-class accuracy (FP32 vs this version), the confusion matrix, and the images
// whose prediction the quantization flipped. Results come from evaluate jobs.
import { html } from '../html.js';
import { useEffect, useState } from 'preact/hooks';
import { useJob } from '../hooks.js';
import { Card, JobStrip, Thumb, Stat, Empty } from '../components.js';
import { Plot, barFigure, heatmapFigure, colors } from '../charts.js';
import { useStore, setState, getState } from '../store.js';
import { navigate } from '../router.js';
import { pct } from '../format.js';
import { refreshVersions } from '../app.js';

export function AccuracyView({ result, fp32, classes, version }) {
  const names = classes || result.per_class.map((c) => c.class);
  const series = [{ name: `v${version.id}`, values: result.per_class.map((c) => c.accuracy), color: colors.quantized }];
  if (fp32) series.unshift({ name: 'FP32', values: fp32.per_class.map((c) => c.accuracy), color: colors.fp32 });
  const flipped = result.flipped || [];
  return html`<div data-testid="accuracy-view">
    <div class="stats">
      <${Stat} label=${`v${version.id} accuracy`} value=${pct(result.accuracy)} sub=${`${result.correct} / ${result.images} images`} />
      ${fp32 ? html`<${Stat} label="FP32 accuracy" value=${pct(fp32.accuracy)} sub=${`${fp32.correct} / ${fp32.images} images`} />` : null}
      ${fp32 ? html`<${Stat} label="difference" value=${`${((result.accuracy - fp32.accuracy) * 100).toFixed(2)} pts`} tone=${result.accuracy < fp32.accuracy ? 'bad' : 'good'} />` : null}
      <${Stat} label="flipped vs FP32" value=${flipped.length} sub="images whose prediction changed" />
    </div>
    <div class="grid-2">
      <${Card} title="Per-class accuracy">
        <${Plot} testid="per-class-chart" figure=${barFigure(names, series, { percent: true, yRange: [0, 100], yTitle: 'accuracy' })} height=${320} />
      </${Card}>
      <${Card} title="Confusion matrix (rows: true class, columns: predicted)">
        <${Plot} testid="confusion-chart" figure=${heatmapFigure({ values: result.confusion, x: names, y: names },
          { colorscale: 'Blues', symmetric: false, xTitle: 'predicted', yTitle: 'true', text: result.confusion.map((r) => r.map(String)) })} height=${380} />
      </${Card}>
    </div>
    <${Card} title=${`Flipped images (${flipped.length})`} actions=${html`<span class="muted">FP32 → quantized prediction; green: the true label</span>`}>
      ${flipped.length ? html`<div class="flipped-grid" data-testid="flipped">
        ${flipped.slice(0, 300).map((f) => html`<${Thumb} index=${f.index} size=${56}
          label=${html`<span class=${f.fp32 === f.label ? 'good' : 'bad'}>${names[f.fp32]}</span> → <span class=${f.quantized === f.label ? 'good' : 'bad'}>${names[f.quantized]}</span>`}
          title=${`#${f.index} label ${names[f.label]}: FP32 ${names[f.fp32]}, quantized ${names[f.quantized]}`}
          onClick=${() => {
            setState({ image: f.index });
            navigate('infer', { v: version.id, image: f.index });
          }} />`)}
        ${flipped.length > 300 ? html`<span class="muted">… and ${flipped.length - 300} more</span>` : null}
      </div>` : html`<${Empty}>No prediction differs from the FP32 model's.</${Empty}>`}
    </${Card}>
  </div>`;
}

export function AccuracyPage({ version, session }) {
  const store = useStore();
  const total = session.data ? session.data.images : 1000;
  const [limit, setLimit] = useState(Math.min(1000, total));
  const fp32Key = `fp32:${session.fp32_model}:${limit}`;
  const result = store.evaluations[version.id];
  const fp32 = store.evaluations[fp32Key] || (result && store.evaluations[`fp32:${session.fp32_model}:${result.images}`]);
  const fp32Job = useJob((res) => setState({ evaluations: { ...getState().evaluations, [`fp32:${session.fp32_model}:${res.images}`]: res } }));
  const job = useJob(async (res) => {
    setState({ evaluations: { ...getState().evaluations, [version.id]: res } });
    refreshVersions();
    if (session.fp32_model && !getState().evaluations[`fp32:${session.fp32_model}:${res.images}`])
      fp32Job.run({ kind: 'evaluate', model: session.fp32_model, limit: res.images });
  });
  const run = () => job.run({ kind: 'evaluate', version: version.id, limit });
  // A result made elsewhere (the Edit view's evaluate) gets its FP32 counterpart here.
  useEffect(() => {
    if (result && session.fp32_model && !fp32 && fp32Job.state === 'idle')
      fp32Job.run({ kind: 'evaluate', model: session.fp32_model, limit: result.images });
  }, [result && result.images, version.id]);
  return html`<div>
    <div class="page-head">
      <div><h1>Accuracy <small class="muted">${version.model} · v${version.id}</small></h1></div>
      <div class="head-actions">
        <select value=${limit} onChange=${(e) => setLimit(Number(e.currentTarget.value))}>
          ${[100, 500, 1000, total].filter((n, i, a) => n <= total && a.indexOf(n) === i).map((n) => html`<option value=${n}>${n.toLocaleString()} images</option>`)}
        </select>
        <button class="btn primary" disabled=${job.running} onClick=${run} data-testid="run-accuracy">${result ? 'Re-evaluate' : 'Evaluate'}</button>
      </div>
    </div>
    <${JobStrip} job=${job} label="evaluation" />
    <${JobStrip} job=${fp32Job} label="FP32 evaluation" />
    ${result ? html`<${AccuracyView} result=${result} fp32=${fp32} classes=${session.data && session.data.classes} version=${version} />`
      : html`<${Card}><${Empty}>Run an evaluation of v${version.id} to see per-class accuracy, the confusion matrix and the flipped images.</${Empty}></${Card}>`}
  </div>`;
}
