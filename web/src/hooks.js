// Data loading for views: useApi(() => api.x(...), [deps]) → {data, loading, error, reload}.
// Failures go to the one error banner (store.reportError); data stays the last good value.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { reportError } from './store.js';
import { followJob, api } from './api.js';

export function useApi(load, deps) {
  const [data, setData] = useState(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const promise = load();
    if (!promise) {
      setData(null);
      return undefined;
    }
    setLoading(true);
    setError(null);
    promise.then(
      (d) => live && (setData(d), setLoading(false)),
      (e) => live && (reportError(e), setError(e), setLoading(false)),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, loading, error, reload };
}

// A background job (POST /api/jobs) followed through its SSE stream.
// run(spec) starts it; state: idle | running | done | cancelled | error; progress: last event.
export function useJob(onDone) {
  const [state, setState] = useState('idle');
  const [progress, setProgress] = useState(null);
  const [result, setResult] = useState(null);
  const jobId = useRef(null);
  const live = useRef(true);
  const doneRef = useRef(onDone);
  doneRef.current = onDone;
  useEffect(() => () => {
    live.current = false;
  }, []);

  const run = useCallback(async (spec) => {
    setState('running');
    setProgress(null);
    setResult(null);
    try {
      const { id } = await api.startJob(spec);
      jobId.current = id;
      const job = await followJob(id, (p) => live.current && setProgress(p));
      if (!live.current) return;
      if (job.state === 'cancelled') {
        setState('cancelled');
        return;
      }
      setResult(job.result);
      setState('done');
      if (doneRef.current) doneRef.current(job.result, job);
    } catch (e) {
      if (live.current) setState('error');
      reportError(e);
    } finally {
      jobId.current = null;
    }
  }, []);

  const cancel = useCallback(async () => {
    if (!jobId.current) return;
    try {
      await api.cancelJob(jobId.current);
    } catch (e) {
      reportError(e);
    }
  }, []);

  return { state, progress, result, run, cancel, running: state === 'running' };
}
