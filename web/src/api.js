// The one module that talks to `qplay serve` (docs/API.md). Everything returns plain data;
// failures are thrown as ApiError carrying the server's {"error": "..."} message.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

const enc = encodeURIComponent;

async function request(method, path, { json, body, headers } = {}) {
  const init = { method, headers: { ...(headers || {}) } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(`cannot reach the qplay server (${method} ${path}): ${e.message}`, 0);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(`${method} ${path}: ${message}`, response.status);
  }
  return data;
}

const get = (path) => request('GET', path);
const post = (path, json) => request('POST', path, { json });

function query(params) {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export const api = {
  session: () => get('/api/session'),
  graph: (model) => get(`/api/models/${enc(model)}/graph`),
  modes: (model) => get(`/api/models/${enc(model)}/modes`),
  uploadModel: (name, bytes) =>
    request('POST', `/api/models${query({ name })}`, {
      body: bytes,
      headers: { 'Content-Type': 'application/octet-stream' },
    }),

  versions: () => get('/api/versions'),
  version: (v) => get(`/api/versions/${enc(v)}`),
  createVersion: (parent, edits, { evaluate = false, replace = false } = {}) =>
    post('/api/versions', { parent, edits, evaluate, ...(replace ? { replace } : {}) }),
  startFrom: (model, edits, { evaluate = false } = {}) => post('/api/versions', { model, edits, evaluate }),
  quant: (v) => get(`/api/versions/${enc(v)}/quant`),
  layer: (v, layer, params) => get(`/api/versions/${enc(v)}/layers/${enc(layer)}${query(params || {})}`),
  inferModel: (model, image) => post('/api/infer', { model, image }),
  residuals: (v, limit) => get(`/api/versions/${enc(v)}/residuals${query({ limit })}`),
  jobs: () => get('/api/jobs'),
  exportUrl: (v) => `/api/versions/${enc(v)}/export.onnx`,

  images: (offset, limit) => get(`/api/images${query({ offset, limit })}`),
  imageUrl: (k) => `/api/images/${enc(k)}.png`,
  infer: (version, image) => post('/api/infer', { version, image }),
  inferPng: (version, png) => post('/api/infer', { version, png }),

  startJob: (spec) => post('/api/jobs', spec),
  job: (id) => get(`/api/jobs/${enc(id)}`),
  cancelJob: (id) => request('DELETE', `/api/jobs/${enc(id)}`),
  jobEventsUrl: (id) => `/api/jobs/${enc(id)}/events`,
};

// Follows a job through its SSE stream (docs/API.md "Jobs"). onProgress gets each
// {done, total}; the promise resolves with the finished job ({state: "done" | "cancelled", result})
// or rejects with the job's error. If the stream breaks, the job is polled instead.
export function followJob(id, onProgress) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(api.jobEventsUrl(id));
    let finished = false;
    const parse = (e) => {
      try {
        return e.data ? JSON.parse(e.data) : null;
      } catch {
        return null;
      }
    };
    const settle = (job) => {
      if (finished) return;
      finished = true;
      source.close();
      if (job.state === 'failed' || job.state === 'error')
        reject(new ApiError(`${job.kind || 'job'} ${id} failed: ${job.error || 'unknown error'}`, 500));
      else resolve(job);
    };
    const poll = async () => {
      while (!finished) {
        try {
          const job = await api.job(id);
          if (job.progress && onProgress) onProgress(job.progress);
          if (job.state !== 'running' && job.state !== 'queued') {
            settle(job);
            return;
          }
        } catch (e) {
          finished = true;
          reject(e);
          return;
        }
        await new Promise((r) => setTimeout(r, 400));
      }
    };
    source.addEventListener('progress', (e) => {
      const p = parse(e);
      if (p && onProgress) onProgress(p);
    });
    for (const kind of ['done', 'cancelled']) {
      source.addEventListener(kind, async (e) => {
        const job = parse(e);
        if (job && job.state) settle(job);
        else api.job(id).then((j) => settle({ ...j, state: j.state === 'running' ? kind : j.state }), reject);
      });
    }
    source.addEventListener('error', (e) => {
      // A named "error" event carries the failed job; a transport error has no data: then
      // fall back to polling GET /api/jobs/{id}.
      const job = parse(e);
      if (job) {
        settle({ ...job, state: 'failed' });
        return;
      }
      if (finished) return;
      source.close();
      poll();
    });
  });
}
