// Hash routing: #/VIEW[/ARG]?key=value&... . Every view is reachable by a URL, e.g.
// #/layers?v=3, #/layer/conv2d_1?v=3&image=7, #/edit?v=5.
import { useEffect, useState } from 'preact/hooks';

export function parseHash(hash) {
  const text = (hash || '').replace(/^#\/?/, '');
  const [path, search = ''] = text.split('?');
  const [view = '', ...rest] = path.split('/').map(decodeURIComponent);
  const params = {};
  for (const part of search.split('&')) {
    if (!part) continue;
    const [k, v = ''] = part.split('=');
    params[decodeURIComponent(k)] = decodeURIComponent(v);
  }
  return { view: view || 'graph', arg: rest.join('/') || null, params };
}

export function href(view, params = {}, arg = null) {
  const path = arg === null || arg === undefined ? view : `${view}/${encodeURIComponent(arg)}`;
  const search = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return `#/${path}${search ? `?${search}` : ''}`;
}

export function navigate(view, params, arg, { replace = false } = {}) {
  const target = href(view, params, arg);
  if (location.hash === target) return;
  if (replace) history.replaceState(null, '', target);
  else location.hash = target;
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute() {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const fn = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', fn);
    return () => window.removeEventListener('hashchange', fn);
  }, []);
  return route;
}
