#!/usr/bin/env node
// ONNX Runtime side of the benchmark: the same measurement as `qplay bench`, printed as the same
// JSON fields, so bench/run_bench.js can put the two next to each other.
//
// usage: node bench/ort_bench.js MODEL --data PATH [--opt all|disabled] [--exact-u8s8] [--batch 100] [--threads 2]
//          [--repeat 5] [--time-budget S] [--max-pass-seconds S] [--warmup-images 1000] [--limit N] [--latency]
//
// What is timed (as in qplay): whole passes over the data set with the input batches already
// converted to float32 tensors; session.run() returns every graph output (copied into JavaScript),
// so a model with every intermediate as an output (qplay bench --expose-all) pays for
// materialising them. ONNX Runtime parallelises inside each operator (intraOpNumThreads); runs are
// issued one after another.
//
// --time-budget: stop repeating once the timed passes took S seconds (never below 3 passes).
// --max-pass-seconds: if the warm-up predicts a longer pass, time only the first images that fit
// (the JSON then says limited_by_time). Both as in `qplay bench`.
'use strict';
const fs = require('fs');
const os = require('os');
const ort = require('onnxruntime-node');

const RECORD = 3073;  // CIFAR-10 record: label byte + 3 x 32 x 32 pixel planes
const PIXELS = 3072;
const MIN_PASSES_UNDER_BUDGET = 3;

function parseArgs(argv) {
  const o = { model: null, data: null, opt: 'all', batch: 100, threads: 2, repeat: 5, timeBudget: 0,
              maxPassSeconds: 0, warmupImages: 1000, limit: -1, latency: false, exactU8s8: false };
  const numeric = { '--batch': 'batch', '--threads': 'threads', '--repeat': 'repeat', '--time-budget': 'timeBudget',
                    '--max-pass-seconds': 'maxPassSeconds', '--warmup-images': 'warmupImages', '--limit': 'limit' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--data') o.data = argv[++i];
    else if (a === '--opt') o.opt = argv[++i];
    else if (a === '--exact-u8s8') o.exactU8s8 = true;
    else if (a === '--latency') o.latency = true;
    else if (a === '--json') { /* JSON is the only output */ }
    else if (numeric[a]) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a non-negative number`);
      o[numeric[a]] = v;
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else if (!o.model) o.model = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!o.model || !o.data) {
    throw new Error('usage: ort_bench.js MODEL --data PATH [--opt all|disabled] [--batch B] [--threads T] [--repeat R] ' +
                    '[--time-budget S] [--max-pass-seconds S] [--warmup-images N] [--limit N] [--latency]');
  }
  if (!['all', 'disabled'].includes(o.opt)) throw new Error('--opt must be all or disabled');
  if (o.batch < 1 || o.threads < 1 || o.repeat < 1) throw new Error('--batch, --threads and --repeat must be at least 1');
  return o;
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return 0;
  return n % 2 ? v[(n - 1) / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

function percentile(values, p) {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.round(p * (v.length - 1)))] : 0;
}

const mb = (bytes) => bytes / (1024 * 1024);
const now = () => Number(process.hrtime.bigint()) / 1e9;  // seconds

function cpuModel() {
  const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
  return m ? m[1] : (os.cpus()[0] || {}).model || 'unknown';
}

// Float32 input batches in the layout the model asks for ([N,32,32,3] or [N,3,32,32]).
function makeBatches(session, data, images, batch) {
  const meta = session.inputMetadata ? session.inputMetadata[0] : null;
  const dims = meta && meta.shape ? meta.shape : ['N', 32, 32, 3];
  const nchw = dims[1] === 3;
  const batches = [];
  for (let begin = 0; begin < images; begin += batch) {
    const n = Math.min(batch, images - begin);
    const x = new Float32Array(n * PIXELS);
    for (let i = 0; i < n; i++) {
      const rec = (begin + i) * RECORD + 1;
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < 1024; p++)
          x[i * PIXELS + (nchw ? c * 1024 + p : p * 3 + c)] = data[rec + c * 1024 + p];
    }
    const shape = nchw ? [n, 3, 32, 32] : [n, 32, 32, 3];
    batches.push({ begin, count: n, feeds: { [session.inputNames[0]]: new ort.Tensor('float32', x, shape) } });
  }
  return batches;
}

// Runs one batch; returns its correct predictions (a check that the run computed the real thing)
// and the bytes of all outputs it handed back.
async function runBatch(session, b, labels) {
  const outs = await session.run(b.feeds);
  const y = outs[session.outputNames[0]];
  const classes = y.dims[1];
  let correct = 0;
  for (let i = 0; i < b.count; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (y.data[i * classes + k] > y.data[i * classes + best]) best = k;
    if (best === labels[b.begin + i]) correct++;
  }
  let bytes = 0;
  for (const name of session.outputNames) bytes += outs[name].data.byteLength;
  return { correct, bytes };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: o.opt,
    // --exact-u8s8: session.x64quantprecision=1, ONNX Runtime's exact uint8 x int8 products on AVX2 (its default
    // vpmaddubsw path saturates; docs/quantization.md section 8), the arithmetic qplay's integer mode computes.
    ...(o.exactU8s8 ? { extra: { session: { x64quantprecision: '1' } } } : {}),
  });
  const data = fs.readFileSync(o.data);
  if (data.length % RECORD !== 0) throw new Error(`${o.data} is not a CIFAR-10 batch file (size ${data.length})`);
  const total = data.length / RECORD;
  let images = o.limit > 0 ? Math.min(o.limit, total) : total;
  const labels = new Uint8Array(images);
  for (let i = 0; i < images; i++) labels[i] = data[i * RECORD];
  const batches = makeBatches(session, data, images, o.batch);
  const baselineRss = mb(process.memoryUsage().rss);

  const result = {
    tool: 'onnxruntime-node',
    version: require('onnxruntime-node/package.json').version,
    model: o.model,
    data: o.data,
    opt: o.opt,
    exact_u8s8: o.exactU8s8,
    images,
    batch: o.batch,
    outputs: session.outputNames.length,
    cpu: cpuModel(),
  };

  // Warm-up, which doubles as the estimate for --max-pass-seconds.
  const warmupBatches = Math.min(Math.ceil(o.warmupImages / o.batch), batches.length);
  const warmupImages = Math.min(warmupBatches * o.batch, images);
  const warmStart = now();
  for (let i = 0; i < warmupBatches; i++) await runBatch(session, batches[i], labels);
  const warmSeconds = now() - warmStart;
  let passBatches = batches.length;
  if (!o.latency && warmupBatches > 0 && o.maxPassSeconds > 0) {
    const predicted = (warmSeconds / warmupImages) * images;
    if (predicted > o.maxPassSeconds) {
      passBatches = Math.max(1, Math.floor((batches.length * o.maxPassSeconds) / predicted));
      images = Math.min(passBatches * o.batch, images);
      Object.assign(result, { limited_by_time: true, images });
    }
  }

  let correct = 0;
  if (o.latency) {
    const perImageMs = [];
    for (let r = 0; r < o.repeat; r++) {
      correct = 0;
      for (const b of batches) {
        const start = now();
        const s = await runBatch(session, b, labels);
        perImageMs.push(((now() - start) * 1000) / b.count);
        correct += s.correct;
      }
    }
    Object.assign(result, {
      threads: o.threads,
      latency_samples: perImageMs.length,
      median_ms_per_image: median(perImageMs),
      p10_ms_per_image: percentile(perImageMs, 0.1),
      p90_ms_per_image: percentile(perImageMs, 0.9),
    });
  } else {
    const runs = [];
    let spent = 0;
    let bytesPerPass = 0;
    for (let r = 0; r < o.repeat; r++) {
      if (o.timeBudget > 0 && spent >= o.timeBudget && r >= MIN_PASSES_UNDER_BUDGET) break;
      correct = 0;
      bytesPerPass = 0;
      const start = now();
      for (let i = 0; i < passBatches; i++) {
        const s = await runBatch(session, batches[i], labels);
        correct += s.correct;
        bytesPerPass += s.bytes;
      }
      runs.push(now() - start);
      spent += runs[runs.length - 1];
    }
    const med = median(runs);
    Object.assign(result, {
      threads: o.threads,
      repeat_requested: o.repeat,
      runs,
      median_seconds: med,
      median_images_per_second: med > 0 ? images / med : 0,
      images_per_second_per_run: runs.map((s) => images / s),
      output_mb_per_pass: mb(bytesPerPass),
    });
  }
  Object.assign(result, {
    correct,
    accuracy: correct / images,
    warmup_images: warmupImages,
    baseline_rss_mb: baselineRss,  // after creating the session, reading the data and building the batches
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,  // kilobytes on Linux
  });
  console.log(JSON.stringify(result, null, 2));
}

main().catch((e) => { console.error('ort_bench: ' + e.message); process.exit(1); });
