// The shell: sidebar navigation, the model/version context, the error banner (the one place
// errors are shown) and the view selected by the URL hash.
import { html } from './html.js';
import { useEffect } from 'preact/hooks';
import { api } from './api.js';
import { useStore, setState, getState, reportError, dismissError, versionById, modelById } from './store.js';
import { useRoute, href, navigate } from './router.js';
import { Loading } from './components.js';
import { pct } from './format.js';
import { GraphPage } from './views/graph.js';
import { LayersPage } from './views/layers.js';
import { LayerPage } from './views/layer.js';
import { InferPage } from './views/infer.js';
import { EditPage } from './views/edit.js';
import { SensitivityPage } from './views/sensitivity.js';
import { ResidualsPage } from './views/residuals.js';
import { ModesPage } from './views/modes.js';
import { QuantizePage } from './views/quantize.js';
import { AccuracyPage } from './views/accuracy.js';
import { ModelsPage } from './views/models.js';

const VIEWS = [
  { id: 'graph', label: 'Model graph', icon: '◇', page: GraphPage, needsVersion: true },
  { id: 'layers', label: 'Layers', icon: '☰', page: LayersPage, needsVersion: true },
  { id: 'layer', label: 'Layer detail', icon: '▤', page: LayerPage, needsVersion: true, hidden: true },
  { id: 'infer', label: 'Inference', icon: '▶', page: InferPage, needsVersion: true },
  { id: 'edit', label: 'Edit', icon: '✎', page: EditPage, needsVersion: true },
  { id: 'accuracy', label: 'Accuracy', icon: '✓', page: AccuracyPage, needsVersion: true },
  { id: 'sensitivity', label: 'Sensitivity', icon: '▥', page: SensitivityPage, needsVersion: true },
  { id: 'residuals', label: 'Residual Adds', icon: '⊕', page: ResidualsPage, needsVersion: true },
  { id: 'modes', label: 'Simulate vs integer', icon: '≈', page: ModesPage, needsVersion: true },
  { id: 'quantize', label: 'Quantize', icon: '⚙', page: QuantizePage },
  { id: 'models', label: 'Models & versions', icon: '⊞', page: ModelsPage },
];

export async function refreshVersions() {
  try {
    const { versions } = await api.versions();
    setState({ versions });
    return versions;
  } catch (e) {
    reportError(e);
    return getState().versions;
  }
}

export async function refreshSession() {
  try {
    const session = await api.session();
    setState({ session });
    return session;
  } catch (e) {
    reportError(e);
    return getState().session;
  }
}

// The version a view works on: ?v=, else the last one used, else the first quantized
// model's base version.
function defaultVersion(session) {
  const last = localStorage.getItem('qplay.version');
  if (last && versionById(last)) return last;
  const quantized = session.models.find((m) => m.kind === 'quantized' && m.base_version !== null && m.base_version !== undefined);
  const any = quantized || session.models.find((m) => m.base_version !== null && m.base_version !== undefined);
  return any ? String(any.base_version) : null;
}

function ErrorBanner({ errors }) {
  if (!errors.length) return null;
  return html`<div class="errors" role="alert" data-testid="errors">
    ${errors.map((e) => html`<div class="error" key=${e.id}>
      <span class="error-text">${e.message}</span>
      <button class="btn-icon" title="dismiss" onClick=${() => dismissError(e.id)}>×</button>
    </div>`)}
  </div>`;
}

function Sidebar({ route, session, version, versions }) {
  const v = version ? version.id : null;
  const models = session.models;
  const modelVersions = version ? versions.filter((x) => x.model === version.model) : [];
  const pick = (e) => {
    const id = e.currentTarget.value;
    const m = modelById(id);
    if (m && m.base_version !== null && m.base_version !== undefined) navigate(route.view === 'layer' ? 'layers' : route.view, { ...route.params, v: m.base_version });
  };
  const lastAcc = (ver) => {
    const a = ver.accuracy || {};
    const k = Object.keys(a).sort((x, y) => Number(y) - Number(x))[0];
    return k ? ` · ${pct(a[k].accuracy, 1)}` : '';
  };
  return html`<nav class="sidebar">
    <div class="brand"><span class="logo">q</span>play<small>quantization playground</small></div>
    <div class="context">
      <label>Model
        <select data-testid="model-select" value=${version ? version.model : ''} onChange=${pick}>
          ${models.map((m) => html`<option value=${m.id} disabled=${m.base_version === null || m.base_version === undefined}>${m.id}${m.kind === 'fp32' ? ' (FP32)' : ''}</option>`)}
        </select>
      </label>
      <label>Version
        <select data-testid="version-select" value=${v ?? ''} onChange=${(e) => navigate(route.view, { ...route.params, v: e.currentTarget.value }, route.arg)}>
          ${modelVersions.map((x) => html`<option value=${x.id}>v${x.id}${x.edits && x.edits.length ? ` · ${x.edits.length} edit${x.edits.length > 1 ? 's' : ''}` : ' · base'}${lastAcc(x)}</option>`)}
        </select>
      </label>
    </div>
    <ul class="nav">
      ${VIEWS.filter((x) => !x.hidden).map((x) => html`<li>
        <a href=${href(x.id, x.needsVersion && v !== null ? { v } : {})} class=${route.view === x.id || (route.view === 'layer' && x.id === 'layers') ? 'active' : ''}
           data-nav=${x.id}><span class="icon">${x.icon}</span>${x.label}</a></li>`)}
    </ul>
    <div class="sidebar-foot">${session.data ? html`<div>${session.data.images} images · ${session.data.source}</div>` : null}
      <div>FP32 reference: ${session.fp32_model || '–'}</div></div>
  </nav>`;
}

export function App() {
  const store = useStore();
  const route = useRoute();
  useEffect(() => {
    refreshSession();
    refreshVersions();
  }, []);

  const { session, versions } = store;
  const view = VIEWS.find((x) => x.id === route.view) || VIEWS[0];
  let version = null;
  if (session && versions.length) {
    const wanted = route.params.v || defaultVersion(session);
    version = wanted ? versionById(wanted) : null;
  }
  useEffect(() => {
    if (version) localStorage.setItem('qplay.version', String(version.id));
  }, [version && version.id]);
  // Put the chosen version into the URL so every view state is a link.
  useEffect(() => {
    if (view.needsVersion && version && String(route.params.v) !== String(version.id))
      navigate(route.view, { ...route.params, v: version.id }, route.arg, { replace: true });
  }, [view.id, version && version.id, route.params.v]);

  let body;
  if (!session) body = html`<${Loading} what="session" />`;
  else if (view.needsVersion && !version) {
    body = route.params.v && versions.length
      ? html`<div class="empty">Version ${route.params.v} does not exist on this server. Pick one in the sidebar.</div>`
      : html`<${Loading} what="versions" />`;
  } else {
    const Page = view.page;
    const model = version ? modelById(version.model) : null;
    body = html`<${Page} key=${view.id} route=${route} session=${session} version=${version} model=${model} versions=${versions} />`;
  }
  return html`<div class="shell">
    ${session ? html`<${Sidebar} route=${route} session=${session} version=${version} versions=${versions} />` : html`<nav class="sidebar"><div class="brand"><span class="logo">q</span>play</div></nav>`}
    <main class="main" data-view=${view.id}>
      <${ErrorBanner} errors=${store.errors} />
      ${body}
    </main>
  </div>`;
}
