// Entry point: mounts the app. Uncaught failures also land in the error banner.
import { render } from 'preact';
import { html } from './html.js';
import { App } from './app.js';
import { reportError } from './store.js';

window.addEventListener('unhandledrejection', (e) => reportError(e.reason));
window.addEventListener('error', (e) => reportError(e.error || e.message));

const root = document.getElementById('app');
root.textContent = ''; // drop the "Loading qplay…" placeholder
render(html`<${App} />`, root);
