// Inference: pick an image of the data set (or upload a PNG/JPEG), see the FP32 and quantized
// top-5 side by side and the per-layer SQNR through the network.
import { html } from '../html.js';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Card, Pending, Thumb } from '../components.js';
import { Plot, sqnrFigure } from '../charts.js';
import { useStore, setState, reportError } from '../store.js';
import { navigate } from '../router.js';
import { PredictionPanel } from './prediction.js';

const PAGE = 60;

export function Gallery({ images, total, offset, setOffset, selected, onPick }) {
  return html`<div class="gallery" data-testid="gallery">
    <div class="gallery-grid">
      ${(images || []).map((im) => html`<${Thumb} index=${im.index} size=${48} selected=${im.index === selected}
        title=${`#${im.index} · ${im.class}`} onClick=${() => onPick(im.index)} />`)}
    </div>
    <div class="pager">
      <button class="btn small" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>‹ prev</button>
      <span class="muted">${offset}–${Math.min(total, offset + PAGE) - 1} of ${total}</span>
      <button class="btn small" disabled=${offset + PAGE >= total} onClick=${() => setOffset(offset + PAGE)}>next ›</button>
    </div>
  </div>`;
}

export function readFileAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

export function InferView({ result, classes, imageSrc, version }) {
  return html`<div class="grid-2 wide-right">
    <${Card} title="Prediction">
      <div class="infer-head">
        <img class="big-image" src=${imageSrc} width="128" height="128" alt="input image" />
        <${PredictionPanel} result=${result} classes=${classes} />
      </div>
    </${Card}>
    <${Card} title="Per-layer SQNR through the network">
      <${Plot} testid="sqnr-chart" figure=${result && sqnrFigure(result.layers)} height=${300}
        onClick=${(p) => navigate('layer', { v: version.id, image: result.image ?? undefined }, p.x)} />
      <p class="muted small">accumulated: the error carried from the input up to this layer; isolated: this layer alone.
        Click a point to open that layer's histograms.</p>
    </${Card}>
  </div>`;
}

export function InferPage({ route, version, session }) {
  const store = useStore();
  const image = route.params.image !== undefined ? Number(route.params.image) : store.image;
  const [offset, setOffset] = useState(Math.floor(image / PAGE) * PAGE);
  const [upload, setUpload] = useState(null); // {url, result}
  const images = useApi(() => api.images(offset, PAGE), [offset]);
  const result = useApi(() => (upload ? null : api.infer(version.id, image)), [version.id, image, upload]);
  const pick = (k) => {
    setUpload(null);
    setState({ image: k });
    navigate('infer', { v: version.id, image: k }, null, { replace: true });
  };
  const onFile = async (e) => {
    const file = e.currentTarget.files[0];
    e.currentTarget.value = ''; // the same file picked again is a new upload
    if (!file) return;
    try {
      const png = await readFileAsBase64(file);
      const r = await api.inferPng(version.id, png);
      setUpload({ url: URL.createObjectURL(file), result: r, name: file.name });
    } catch (err) {
      reportError(err);
    }
  };
  const shown = upload ? upload.result : result.data;
  return html`<div>
    <${Card} title="Images" actions=${html`<label class="btn small">Upload PNG/JPEG…
        <input type="file" accept="image/png,image/jpeg" hidden onChange=${onFile} data-testid="upload-image" /></label>`}>
      ${images.data ? html`<${Gallery} images=${images.data.images} total=${images.data.total} offset=${offset} setOffset=${setOffset}
        selected=${upload ? null : image} onPick=${pick} />` : html`<${Pending} query=${images} what="images" />`}
    </${Card}>
    ${shown ? html`<${InferView} result=${shown} classes=${session.data && session.data.classes}
        imageSrc=${upload ? upload.url : api.imageUrl(image)} version=${version} />` : html`<${Pending} query=${result} what="the prediction" />`}
  </div>`;
}
