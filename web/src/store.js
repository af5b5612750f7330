// A tiny observable store for what several views share: the error banner (errors are shown in
// one place), the session, the version list, undo/redo stacks and the last evaluation of each
// version. Views read it through useStore() and change it only through the functions below.
import { useEffect, useState } from 'preact/hooks';

const state = {
  errors: [],          // [{id, message}]
  session: null,       // GET /api/session
  versions: [],        // GET /api/versions .versions
  redo: {},            // model id -> [version ids] undone, most recent last
  evaluations: {},     // version id -> evaluate job result
  studies: {},         // "sensitivity:<v>", "compare:<v>" -> job result (kept while the page lives)
  image: 0,            // current data-set image (shared by infer, edit and layer detail)
  busy: 0,             // requests in flight that the user waits for
};
const listeners = new Set();
let nextErrorId = 1;

function emit() {
  for (const fn of listeners) fn(state);
}

export function getState() {
  return state;
}

export function setState(patch) {
  Object.assign(state, typeof patch === 'function' ? patch(state) : patch);
  emit();
}

export function useStore() {
  const [, force] = useState(0);
  useEffect(() => {
    const fn = () => force((n) => n + 1);
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return state;
}

export function reportError(err) {
  const message = err && err.message ? err.message : String(err);
  // The same message twice in a row (e.g. a retried request) is shown once.
  if (state.errors.length && state.errors[state.errors.length - 1].message === message) return;
  console.error(err);
  setState({ errors: [...state.errors, { id: nextErrorId++, message }].slice(-4) });
}

export function dismissError(id) {
  setState({ errors: state.errors.filter((e) => e.id !== id) });
}

export function versionById(id) {
  return state.versions.find((v) => String(v.id) === String(id)) || null;
}

export function modelById(id) {
  return (state.session && state.session.models.find((m) => m.id === id)) || null;
}

export function saveStudy(key, result) {
  setState({ studies: { ...state.studies, [key]: result } });
}
