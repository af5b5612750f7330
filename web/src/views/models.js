// Models & versions: the loaded models, every version with its accuracy, and ONNX upload
// (e.g. a model exported from the Edit view, or one quantized elsewhere).
import { html } from '../html.js';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Card, DataTable, AccuracyBadge } from '../components.js';
import { reportError } from '../store.js';
import { href } from '../router.js';
import { refreshSession, refreshVersions } from '../app.js';
import { when } from '../format.js';

export function ModelsView({ session, versions }) {
  const modelColumns = [
    { key: 'id', label: 'model', render: (m) => (m.base_version !== null && m.base_version !== undefined ? html`<a href=${href('graph', { v: m.base_version })}>${m.id}</a>` : m.id) },
    { key: 'kind', label: 'kind' },
    { key: 'format', label: 'format' },
    { key: 'nodes', label: 'nodes', numeric: true },
    { key: 'layers', label: 'layers', numeric: true },
    { key: 'base_version', label: 'base version', render: (m) => (m.base_version === null || m.base_version === undefined ? '–' : `v${m.base_version}`) },
    { key: 'cache', label: 'cache', render: (m) => m.cache || '–' },
    { key: 'path', label: 'file', render: (m) => html`<code class="small">${m.path}</code>` },
  ];
  const versionColumns = [
    { key: 'id', label: 'version', numeric: true, render: (v) => html`<a href=${href('edit', { v: v.id })}>v${v.id}</a>` },
    { key: 'model', label: 'model' },
    { key: 'parent', label: 'parent', render: (v) => (v.parent === null || v.parent === undefined ? '–' : `v${v.parent}`) },
    { key: 'edits', label: 'edits', value: (v) => (v.edits || []).join(' '), render: (v) => ((v.edits || []).length ? html`<code class="small">${v.edits.join(' ')}</code>` : html`<span class="muted">base</span>`) },
    { key: 'accuracy', label: 'accuracy', value: () => null, render: (v) => html`<${AccuracyBadge} accuracy=${v.accuracy} />` },
    { key: 'created', label: 'created', render: (v) => when(v.created) },
  ];
  return html`<div>
    <${Card} title="Models"><${DataTable} testid="models-table" columns=${modelColumns} rows=${session.models} compact /></${Card}>
    <${Card} title="Versions"><${DataTable} testid="versions-table" columns=${versionColumns} rows=${versions.slice().reverse()} compact /></${Card}>
  </div>`;
}

export function ModelsPage({ session, versions }) {
  const [name, setName] = useState('');
  const [uploading, setUploading] = useState(false);
  const [message, setMessage] = useState(null);
  const limit = session.limits ? session.limits.model_upload_bytes : 64 << 20;
  const onFile = async (e) => {
    const file = e.currentTarget.files[0];
    e.currentTarget.value = '';
    if (!file) return;
    if (file.size > limit) {
      reportError(new Error(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the server takes models up to ${(limit / 1048576).toFixed(0)} MB`));
      return;
    }
    setUploading(true);
    try {
      const stem = (name || file.name.replace(/\.onnx$/i, '')).replace(/[^A-Za-z0-9_.-]/g, '_');
      const res = await api.uploadModel(stem, await file.arrayBuffer());
      await refreshSession();
      await refreshVersions();
      setMessage(`uploaded ${res && res.id ? res.id : stem}`);
    } catch (err) {
      reportError(err);
    } finally {
      setUploading(false);
    }
  };
  return html`<div>
    <div class="page-head"><div><h1>Models & versions</h1></div>
      <div class="head-actions">
        <input placeholder="name (default: file name)" value=${name} onInput=${(e) => setName(e.currentTarget.value)} data-testid="upload-name" />
        <label class="btn primary">${uploading ? 'Uploading…' : 'Upload ONNX…'}
          <input type="file" accept=".onnx" hidden onChange=${onFile} data-testid="upload-model" disabled=${uploading} /></label>
      </div></div>
    ${message ? html`<div class="notice good" data-testid="upload-result">${message}</div>` : null}
    <${ModelsView} session=${session} versions=${versions} />
  </div>`;
}
