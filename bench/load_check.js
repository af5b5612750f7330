#!/usr/bin/env node
// Load check for `qplay serve` (a script, not a test): N concurrent clients call the two
// interactive endpoints — single-image inference and the layer detail — as fast as they can for
// a fixed time on loopback, then print errors and latency percentiles as a markdown table.
//
//   ./build/qplay serve &            # or any running server
//   node bench/load_check.js [--url http://127.0.0.1:8321] [--clients 20] [--seconds 30]
//
// No dependencies: Node's own http module, one keep-alive agent per client.
'use strict';
const http = require('http');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const base = new URL(arg('url', process.env.QPLAY_URL || 'http://127.0.0.1:8321'));
const clients = Number(arg('clients', 20));
const seconds = Number(arg('seconds', 30));

function request(agent, method, path, body) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request(
      { host: base.hostname, port: base.port, method, path, agent,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - start) / 1e6;
          resolve({ status: res.statusCode, ms, body: Buffer.concat(chunks).toString() });
        });
      });
    req.on('error', (e) => resolve({ status: 0, ms: Number(process.hrtime.bigint() - start) / 1e6, body: String(e) }));
    if (data) req.write(data);
    req.end();
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const setup = new http.Agent({ keepAlive: true });
  const session = await request(setup, 'GET', '/api/session');
  if (session.status !== 200) throw new Error(`GET /api/session: ${session.status} ${session.body}`);
  const s = JSON.parse(session.body);
  const model = s.models.find((m) => m.kind === 'quantized');
  if (!model) throw new Error('the server has no quantized model');
  const version = model.base_version;
  const images = s.data.images;
  const graph = JSON.parse((await request(setup, 'GET', `/api/models/${model.id}/graph`)).body);
  const layers = graph.layers.map((l) => l.name);

  const endpoints = {
    infer: { lat: [], errors: 0, codes: {} },
    layer: { lat: [], errors: 0, codes: {} },
  };
  const deadline = Date.now() + seconds * 1000;
  let firstError = '';
  async function client(i) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let n = 0; Date.now() < deadline; ++n) {
      const image = Math.floor(Math.random() * images);
      const kind = n % 2 === 0 ? 'infer' : 'layer';
      const r = kind === 'infer'
        ? await request(agent, 'POST', '/api/infer', { version, image })
        : await request(agent, 'GET',
          `/api/versions/${version}/layers/${layers[(i + n) % layers.length]}?image=${image}&bins=32`);
      const e = endpoints[kind];
      e.lat.push(r.ms);
      e.codes[r.status] = (e.codes[r.status] || 0) + 1;
      if (r.status !== 200) {
        e.errors++;
        if (!firstError) firstError = `${kind}: ${r.status} ${r.body.slice(0, 200)}`;
      }
    }
    agent.destroy();
  }
  const started = Date.now();
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  const elapsed = (Date.now() - started) / 1000;
  setup.destroy();

  console.log(`qplay serve load check: ${clients} clients, ${elapsed.toFixed(1)} s, model ${model.id} ` +
              `(version ${version}), ${base.host}\n`);
  console.log('| endpoint | requests | errors | req/s | p50 ms | p95 ms | max ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const names = { infer: 'POST /api/infer', layer: 'GET /api/versions/{v}/layers/{layer}?image=k' };
  for (const [kind, e] of Object.entries(endpoints)) {
    const sorted = e.lat.slice().sort((a, b) => a - b);
    console.log(`| ${names[kind]} | ${sorted.length} | ${e.errors} | ${(sorted.length / elapsed).toFixed(1)} | ` +
                `${percentile(sorted, 50).toFixed(1)} | ${percentile(sorted, 95).toFixed(1)} | ` +
                `${(sorted[sorted.length - 1] || NaN).toFixed(1)} |`);
  }
  if (firstError) console.log(`\nfirst error: ${firstError}`);
  process.exitCode = endpoints.infer.errors + endpoints.layer.errors ? 1 : 0;
}

main().catch((e) => {
  console.error(`load_check: ${e.message}`);
  process.exit(2);
});
