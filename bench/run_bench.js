#!/usr/bin/env node
// `make bench`: runs qplay (`qplay bench`, `qplay eval`) and ONNX Runtime (bench/ort_bench.js) side
// by side on this machine, same thread count, same data, in one run, and writes
// docs/PERFORMANCE.md. Raw results go to build/bench/results.json.
//
// Each measurement is its own process, so each peak RSS is that workload's alone. A measurement
// that fails is reported in the table ("failed: ...") instead of stopping the run.
//
// Environment (all optional): QPLAY (binary, default build/qplay), BENCH_DATA (CIFAR-10 batch
// file), BENCH_REPEAT (timed passes, default 5), BENCH_TIME_BUDGET (seconds of timed passes
// after which a measurement stops repeating, never below 3 passes; default 30),
// BENCH_MAX_PASS_SECONDS (a workload whose warm-up predicts a longer pass times only the first
// images that fit, and the report says so; default 40), BENCH_OUT (report path, default
// docs/PERFORMANCE.md).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
process.chdir(ROOT);  // every command below is relative to the repository, as printed in the report

const QPLAY = process.env.QPLAY || 'build/qplay';
const THREADS = 2;
// Batch 100 by default (REFERENCE.md's setting); `make bench` also runs batch 16 (BENCH_BATCH=16), where both
// runtimes are faster on this 2-core machine because a layer's activations stay in the caches.
const BATCH = Number(process.env.BENCH_BATCH || 100);
const OTHER_REPORT = process.env.BENCH_OTHER_REPORT || '';  // the other batch size's report, linked from this one
const ORT_BEST_FP32_BATCH = 32;  // REFERENCE.md: ONNX Runtime's best FP32 batch on this machine kind
const REPEAT = Number(process.env.BENCH_REPEAT || 5);
// Rounds of every measurement, qplay and ONNX Runtime alternating; each figure is its side's best round. This host's
// speed drifts by 20-40% over minutes (other tenants), and interference only ever slows a run down, so the best of a
// few rounds taken close together is the figure least distorted by it, for both sides alike.
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const TIME_BUDGET = Number(process.env.BENCH_TIME_BUDGET || 30);
const MAX_PASS_SECONDS = Number(process.env.BENCH_MAX_PASS_SECONDS || 40);
const WARMUP_IMAGES = 200;  // at least one batch per worker thread
const LATENCY_IMAGES = 1000;
const LATENCY_REPEAT = 3;
const OUT = process.env.BENCH_OUT || 'docs/PERFORMANCE.md';
const WORK = 'build/bench';
const MEASUREMENT_TIMEOUT_S = 900;

const MODELS = {
  fp32: 'models/resnet8_fp32.onnx',
  u8: 'models/resnet8_u8act_s8w_pertensor.onnx',
  s8: 'models/resnet8_s8act_s8w_perchannel.onnx',
};
const MODEL_LABEL = {
  fp32: 'FP32',
  u8: 'QDQ u8 act / s8 w, per tensor',
  s8: 'QDQ s8 act / s8 w, per channel',
};
const CAPTURE_QDQ = 'u8';  // the QDQ model used for the capture rows

// ---- data ------------------------------------------------------------------------------------

function chooseData() {
  if (process.env.BENCH_DATA) return { path: process.env.BENCH_DATA, note: 'set by BENCH_DATA' };
  const full = '../shared/data/cifar10/test_batch.bin';
  if (fs.existsSync(full)) return { path: full, note: 'full CIFAR-10 test set' };
  return {
    path: 'data/cifar10_test_1000.bin',
    note: `NOTE: ${full} is absent, so this run used the shipped 1,000-image sample; ` +
          'figures on 1,000 images are noisier and not comparable with REFERENCE.md.',
  };
}

// ---- running things --------------------------------------------------------------------------

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s`;
const commands = [];  // every command run, in order, for the report

function shellQuote(argv) {
  return argv.map((a) => (/^[\w./=:,+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ');
}

// Runs a command that prints JSON; returns {ok, json, cmd, error}.
function runJson(label, argv) {
  const cmd = shellQuote(argv);
  commands.push(cmd);
  process.stderr.write(`[${elapsed()}] ${label} ...`);
  const loadBefore = os.loadavg()[0];  // 1-minute load average when the measurement started
  const t0 = Date.now();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: MEASUREMENT_TIMEOUT_S * 1000,
                                                maxBuffer: 64 << 20 });
  const took = ((Date.now() - t0) / 1000).toFixed(0);
  let result;
  if (r.error) result = { ok: false, error: r.error.code === 'ETIMEDOUT' ? `timed out after ${MEASUREMENT_TIMEOUT_S}s` : r.error.message };
  else if (r.status !== 0) result = { ok: false, error: (r.stderr || r.stdout || `exit status ${r.status}`).trim().split('\n').pop() };
  else {
    try {
      result = { ok: true, json: JSON.parse(r.stdout) };
    } catch (e) {
      result = { ok: false, error: `unreadable output: ${e.message}` };
    }
  }
  result.cmd = cmd;
  result.load_before = loadBefore;
  const shown = result.ok
    ? (result.json.median_images_per_second ? `${fmtInt(result.json.median_images_per_second)} images/s`
       : result.json.median_ms_per_image ? `${result.json.median_ms_per_image.toFixed(3)} ms/image`
       : result.json.images_per_second ? `${fmtInt(result.json.images_per_second)} images/s` : 'done')
    : `FAILED: ${result.error}`;
  process.stderr.write(` ${shown} (${took}s)\n`);
  return result;
}

function qplayBench(data, model, mode, extra = []) {
  return runJson(`qplay bench ${mode} ${path.basename(model)}`, [
    QPLAY, 'bench', model, '--data', data, '--mode', mode, '--batch', String(BATCH), '--threads', String(THREADS),
    '--repeat', String(REPEAT), '--time-budget', String(TIME_BUDGET), '--max-pass-seconds', String(MAX_PASS_SECONDS),
    '--warmup-images', String(WARMUP_IMAGES), ...extra, '--json']);
}

// ONNX Runtime's half of a row. When qplay's half (`paired`) timed only the first N images (its
// pass would have exceeded MAX_PASS_SECONDS), ONNX Runtime times exactly those N images too, so
// both figures and the ratio cover the same data.
function ortBench(data, model, opt, { batch = BATCH, paired = null, exactU8s8 = false } = {}) {
  const matched = paired && paired.ok && paired.json.limited_by_time ? paired.json.images : 0;
  const limit = matched ? ['--limit', String(matched), '--max-pass-seconds', '0']
                        : ['--max-pass-seconds', String(MAX_PASS_SECONDS)];
  return runJson(`ORT ${opt}${exactU8s8 ? ' exact u8s8' : ''} batch ${batch} ${path.basename(model)}`, [
    'node', 'bench/ort_bench.js', model, '--data', data, '--opt', opt, ...(exactU8s8 ? ['--exact-u8s8'] : []),
    '--batch', String(batch),
    '--threads', String(THREADS), '--repeat', String(REPEAT), '--time-budget', String(TIME_BUDGET), ...limit,
    '--warmup-images', String(WARMUP_IMAGES)]);
}

// Per measurement, the best of the rounds that succeeded (highest images/s, lowest ms/image), with every round's
// figure kept in `rounds` for the report.
function bestRounds(rounds) {
  const best = {};
  const figure = (r) => (r.json.median_images_per_second ? r.json.median_images_per_second : -r.json.median_ms_per_image);
  for (const key of Object.keys(rounds[0])) {
    const all = rounds.map((R) => R[key]).filter((r) => r);
    const ok = all.filter((r) => r.ok);
    best[key] = ok.length ? ok.reduce((a, b) => (figure(b) > figure(a) ? b : a)) : all[0];
    best[key].rounds = ok.map((r) => Math.abs(figure(r)));
  }
  return best;
}

// Of several `qplay bench --peak` results, the one with the higher fp32 rate (or a failed one if all failed).
function bestPeak(peaks) {
  const ok = peaks.filter((p) => p.ok && p.json.isa !== 'none');
  if (!ok.length) return peaks[peaks.length - 1];
  return ok.reduce((a, b) => (b.json.fp32_multiply_adds_per_second > a.json.fp32_multiply_adds_per_second ? b : a));
}

function latencyArgs() {
  return ['--batch', '1', '--latency', '--limit', String(LATENCY_IMAGES), '--repeat', String(LATENCY_REPEAT),
          '--warmup-images', '100'];
}

// The integer row stays "n/a" until src/runtime/integer/lower.h exists; `qplay bench --mode
// integer` then compiles it in (see cmd_bench.cc) and this script needs no change.
function qplayInteger(data, model, extra = []) {
  const r = qplayBench(data, model, 'integer', extra);
  if (!r.ok && /not built yet/.test(r.error)) r.na = 'n/a (integer mode not built yet)';
  return r;
}

// ---- formatting ------------------------------------------------------------------------------

function fmtInt(x) {
  return Math.round(x).toLocaleString('en-US');
}

let DATA_IMAGES = 0;  // images in the data set, set once it is known

function ips(r) {
  if (r.na) return r.na;
  if (!r.ok) return `failed: ${r.error}`;
  const j = r.json;
  const rates = j.images_per_second_per_run;
  const spread = rates.length > 1 ? ` (${fmtInt(Math.min(...rates))}-${fmtInt(Math.max(...rates))}, ${rates.length} passes)` : '';
  const limited = j.limited_by_time ? ` [only the first ${fmtInt(j.images)} images: a full pass would exceed ${MAX_PASS_SECONDS} s]`
    : j.images < DATA_IMAGES ? ` [the same first ${fmtInt(j.images)} images as qplay]` : '';
  const others = r.rounds && r.rounds.length > 1 ? `; rounds ${r.rounds.map(fmtInt).join(' / ')}` : '';
  return `**${fmtInt(j.median_images_per_second)}**${spread}${others}${limited}`;
}

function ratio(a, b) {
  if (!a.ok || !b.ok) return '-';
  return (a.json.median_images_per_second / b.json.median_images_per_second).toFixed(3);
}

function rss(r) {
  if (!r.ok) return '-';
  return `${r.json.peak_rss_mb.toFixed(0)} (${r.json.baseline_rss_mb.toFixed(0)})`;
}

function acc(r) {
  return r.ok ? `${(r.json.accuracy * 100).toFixed(2)}%` : '-';
}

// Flags a real accuracy difference: same images, more than 0.2 percentage points apart. (The
// integer rows may legitimately differ: qplay's integer arithmetic and ONNX Runtime's fused
// kernels round differently; the float rows should agree.)
function accuracyNote(q, o) {
  if (!q.ok || !o.ok || q.json.images !== o.json.images) return '';
  const diff = (q.json.accuracy - o.json.accuracy) * 100;
  return Math.abs(diff) > 0.2 ? `differs by ${diff > 0 ? '+' : ''}${diff.toFixed(2)} points on the same images` : '';
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || 'unknown';
  const flags = ((cpuinfo.match(/^flags\s*:\s*(.*)$/m) || [])[1] || '').split(/\s+/);
  const simd = ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni'].filter((f) => flags.includes(f));
  return {
    cpu: model,
    logical_cpus: os.cpus().length,
    simd: simd.join(' '),
    memory_gb: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    onnxruntime: require(path.join(ROOT, 'node_modules/onnxruntime-node/package.json')).version,
  };
}

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

// ---- the run ---------------------------------------------------------------------------------

function main() {
  if (!fs.existsSync(QPLAY)) throw new Error(`${QPLAY} not found; build first (make build)`);
  if (!fs.existsSync('node_modules/onnxruntime-node')) throw new Error('node_modules/onnxruntime-node is missing; run make deps');
  fs.mkdirSync(WORK, { recursive: true });
  const data = chooseData();
  const D = data.path;
  DATA_IMAGES = fs.statSync(D).size / 3073;  // CIFAR-10 records
  const loadBefore = loadavg();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  process.stderr.write(`qplay benchmark on ${D} (${data.note}); ${THREADS} threads, batch ${BATCH}, ` +
                       `up to ${REPEAT} passes (time budget ${TIME_BUDGET}s each), load ${loadBefore}\n`);

  // Models with every intermediate as an output, for ONNX Runtime's side of the capture rows.
  const exposed = {};
  for (const key of ['fp32', CAPTURE_QDQ]) {
    exposed[key] = `${WORK}/${path.basename(MODELS[key], '.onnx')}_all_outputs.onnx`;
    const r = runJson(`expose-all ${path.basename(MODELS[key])}`,
                      [QPLAY, 'bench', MODELS[key], '--expose-all', exposed[key], '--json']);
    if (!r.ok) throw new Error(`cannot write ${exposed[key]}: ${r.error}`);
  }

  // The machine's multiply-add peak, before and after the rounds: the higher one is the least disturbed.
  const peakArgs = [QPLAY, 'bench', MODELS.fp32, '--peak', '--threads', String(THREADS), '--json'];
  const peaks = [runJson('qplay bench --peak', peakArgs)];

  const rounds = [];
  for (let round = 1; round <= ROUNDS; ++round) {
  process.stderr.write(`round ${round} of ${ROUNDS}\n`);
  const R = {};
  rounds.push(R);
  // 1. FP32, ONNX Runtime with all graph optimisations (batch 100 and its best batch, 32).
  R.fp32_q = qplayBench(D, MODELS.fp32, 'fp32');
  R.fp32_o = ortBench(D, MODELS.fp32, 'all', { paired: R.fp32_q });
  R.fp32_o32 = ortBench(D, MODELS.fp32, 'all', { batch: ORT_BEST_FP32_BATCH, paired: R.fp32_q });
  // 2. QDQ in qplay's integer mode against ONNX Runtime's fused integer kernels.
  for (const k of ['u8', 's8']) {
    R[`int_${k}_q`] = qplayInteger(D, MODELS[k]);
    R[`int_${k}_o`] = ortBench(D, MODELS[k], 'all', { paired: R[`int_${k}_q`] });
  }
  // ONNX Runtime's uint8 x int8 kernels saturate on AVX2 without VNNI; with session.x64quantprecision=1 they compute
  // the exact products, qplay's arithmetic (docs/quantization.md section 8).
  R.int_u8_oexact = ortBench(D, MODELS.u8, 'all', { paired: R.int_u8_q, exactU8s8: true });
  // What oneDNN's int8 conv sums add (src/runtime/kernels/fast/qconv_onednn.h): qplay's own kernels alone.
  R.int_u8_q_own = qplayInteger(D, MODELS.u8, ['--int-conv', 'own']);
  // 3. QDQ simulated in float against ONNX Runtime with optimisations disabled (same semantics).
  for (const k of ['u8', 's8']) {
    R[`sim_${k}_q`] = qplayBench(D, MODELS[k], 'simulate');
    R[`sim_${k}_o`] = ortBench(D, MODELS[k], 'disabled', { paired: R[`sim_${k}_q`] });
  }
  // 4. Capture of every intermediate tensor.
  R.cap_fp32_q = qplayBench(D, MODELS.fp32, 'capture');
  R.cap_fp32_o = ortBench(D, exposed.fp32, 'all', { paired: R.cap_fp32_q });
  R.cap_qdq_q = qplayBench(D, MODELS[CAPTURE_QDQ], 'capture');
  R.cap_qdq_o = ortBench(D, exposed[CAPTURE_QDQ], 'disabled', { paired: R.cap_qdq_q });
  // Batch-1 latency, FP32.
  R.lat_q = runJson('qplay latency fp32', [QPLAY, 'bench', MODELS.fp32, '--data', D, '--mode', 'fp32',
                                          '--threads', String(THREADS), ...latencyArgs(), '--json']);
  R.lat_o = runJson('ORT latency fp32', ['node', 'bench/ort_bench.js', MODELS.fp32, '--data', D, '--opt', 'all',
                                         '--threads', String(THREADS), ...latencyArgs()]);
  }
  const R = bestRounds(rounds);
  peaks.push(runJson('qplay bench --peak', peakArgs));
  R.peak = bestPeak(peaks);
  // `qplay eval` as a user runs it (one pass, pixel conversion and scoring included).
  const evalHelp = spawnSync(QPLAY, ['eval', '--help'], { encoding: 'utf8' }).stdout || '';
  const evalHasIntegerMode = /--mode/.test(evalHelp);
  R.eval = [];
  for (const k of ['fp32', 'u8', 's8']) {
    R.eval.push({ key: k, mode: k === 'fp32' ? 'fp32' : 'simulate',
                  r: runJson(`qplay eval ${path.basename(MODELS[k])}`,
                             [QPLAY, 'eval', MODELS[k], '--data', D, '--batch', String(BATCH), '--threads', String(THREADS), '--json']) });
    if (k !== 'fp32' && evalHasIntegerMode) {
      // As many images as `qplay bench --mode integer` managed within its pass limit.
      const bench = R[`int_${k}_q`];
      const limit = bench.ok && bench.json.limited_by_time ? ['--limit', String(bench.json.images)] : [];
      R.eval.push({ key: k, mode: 'integer',
                    r: runJson(`qplay eval --mode integer ${path.basename(MODELS[k])}`,
                               [QPLAY, 'eval', MODELS[k], '--mode', 'integer', '--data', D, ...limit,
                                '--batch', String(BATCH), '--threads', String(THREADS), '--json']) });
    }
  }

  const loadAfter = loadavg();
  const totalSeconds = (Date.now() - started) / 1000;
  const m = machine();
  const isa = R.fp32_q.ok ? R.fp32_q.json.isa : 'unknown';
  fs.writeFileSync(`${WORK}/results.json`, JSON.stringify({ date, data, machine: m, isa, loadBefore, loadAfter, results: R }, null, 2));
  fs.writeFileSync(OUT, report({ date, data, m, isa, loadBefore, loadAfter, totalSeconds, R, exposed, evalHasIntegerMode }));
  process.stderr.write(`[${elapsed()}] wrote ${OUT} and ${WORK}/results.json\n`);
}

// ---- the report ------------------------------------------------------------------------------

// How close each side comes to what this machine's multiply-add units allow (`qplay bench --peak`), and what the
// issue's targets would need.
function boundSection(L, R, m) {
  const row = (cells) => L.push(`| ${cells.join(' | ')} |`);
  L.push('## Against the hardware bound');
  L.push('');
  const p = R.peak;
  if (!p || !p.ok || p.json.isa === 'none') {
    L.push(`Not measured: ${p && p.ok ? 'this CPU has no AVX2+FMA' : `\`qplay bench --peak\` failed: ${p ? p.error : '?'}`}.`);
    L.push('');
    return;
  }
  const j = p.json;
  const fp32 = j.fp32_bound_images_per_second, wino = j.fp32_winograd_bound_images_per_second;
  const int16 = j.int16_bound_images_per_second;
  L.push(`\`${p.cmd}\` (run before and after the rounds; the higher figure) runs register-resident loops of the ` +
         `instructions the kernels are built from on ${j.threads} threads: **${(j.fp32_multiply_adds_per_second / 1e9).toFixed(0)} G** ` +
         `fp32 multiply-adds/s (\`${j.fp32_instruction}\`) and **${(j.int16_multiply_adds_per_second / 1e9).toFixed(0)} G** int16 ` +
         `multiply-adds/s (\`${j.int16_instruction}\`, how the exact integer kernels multiply). ResNet-8 has ` +
         `${fmtInt(j.multiply_adds_per_image)} multiply-adds per image (REFERENCE.md: 12,501,632), ` +
         `${fmtInt(j.winograd_eligible_multiply_adds_per_image)} of them in 3x3 stride-1 convs, which Winograd ` +
         'F(2x2, 3x3) does with 2.25x fewer multiplies. The bound is the images/s if every multiply-add ran at the peak ' +
         'rate and nothing else took any time; no real run reaches it (memory traffic, padding, quantization and ' +
         'the other operators all cost time).');
  L.push('');
  row(['workload', 'bound, images/s', 'qplay images/s (share of the bound)', 'ORT images/s (share)']);
  row(['---', '---:', '---:', '---:']);
  const share = (r, bound) => (r && r.ok ? `${fmtInt(r.json.median_images_per_second)} (${pct(r.json.median_images_per_second / bound)})` : '-');
  row(['1. FP32, direct multiply-adds at the fp32 peak', fmtInt(fp32), share(R.fp32_q, fp32), share(R.fp32_o, fp32)]);
  row(['1. FP32, with Winograd for the 3x3 stride-1 convs', fmtInt(wino), share(R.fp32_q, wino), share(R.fp32_o, wino)]);
  row([`2. ${MODEL_LABEL.u8}, integer, at the int16 peak`, fmtInt(int16), share(R.int_u8_q, int16), share(R.int_u8_oexact, int16) + ' (exact)']);
  row([`2. ${MODEL_LABEL.u8}, integer, qplay's own kernels, at the int16 peak`, fmtInt(int16), share(R.int_u8_q_own, int16), '-']);
  row([`2. ${MODEL_LABEL.s8}, integer, at the int16 peak`, fmtInt(int16), share(R.int_s8_q, int16), share(R.int_s8_o, int16)]);
  row([`3. ${MODEL_LABEL.u8}, simulate (float, ONNX Runtime's order: no Winograd)`, fmtInt(fp32), share(R.sim_u8_q, fp32), share(R.sim_u8_o, fp32)]);
  L.push('');
  L.push('Integer rows: qplay\'s own kernels run the 3x3 stride-1 convs by an exact integer Winograd, so they can pass ' +
         'the direct bound; ' +
         (/avx512_vnni|avx_vnni/.test(m.simd)
           ? 'oneDNN\'s kernels (qplay\'s integer convs here but the first) and ONNX Runtime\'s default uint8 kernels ' +
             'multiply bytes (`vpdpbusd`, 64 products per instruction, twice the int16 rate), so this figure does not ' +
             'bound them either.'
           : 'ONNX Runtime\'s default uint8 kernels multiply 32 pairs per instruction with saturation (`vpmaddubsw`) and ' +
             'are not bound by this figure either.'));
  L.push('');
  const need = (o, times) => (o && o.ok ? o.json.median_images_per_second * times : NaN);
  const capFp32 = need(R.cap_fp32_o, 10), capQdq = need(R.cap_qdq_o, 10);
  if (Number.isFinite(capFp32) && Number.isFinite(capQdq)) {
    L.push('**What the capture target (10x ONNX Runtime) would take.** A capture computes every tensor the inference ' +
           `computes, so it is at most as fast as inference. 10x ONNX Runtime\'s FP32 capture is ${fmtInt(capFp32)} ` +
           `images/s: ${pct(capFp32 / fp32)} of the direct fp32 bound and ${pct(capFp32 / wino)} of the Winograd bound, ` +
           `with every tensor still to be written out. 10x its QDQ capture is ${fmtInt(capQdq)} images/s: ${pct(capQdq / fp32)} ` +
           'of the fp32 bound for a float simulation in ONNX Runtime\'s summation order (the only order that gives its ' +
           'values), and the capture exists to hand over exactly those values.');
    L.push('');
  }
}

function pct(x) {
  return `${(100 * x).toFixed(0)}%`;
}

function report({ date, data, m, isa, loadBefore, loadAfter, totalSeconds, R, exposed, evalHasIntegerMode }) {
  const L = [];
  const row = (cells) => L.push(`| ${cells.join(' | ')} |`);
  const images = R.fp32_o.ok ? R.fp32_o.json.images : R.fp32_q.ok ? R.fp32_q.json.images : '?';

  L.push('# Performance: qplay against ONNX Runtime');
  L.push('');
  L.push('Generated by `make bench` (bench/run_bench.js); do not edit by hand, re-run it. Both sides were measured');
  L.push('in the same run on the same machine, one process per measurement, with the same thread count and data.');
  L.push('');
  L.push(`- **Date**: ${date}; whole benchmark took ${(totalSeconds / 60).toFixed(1)} min`);
  L.push(`- **Machine**: ${m.cpu}, ${m.logical_cpus} logical CPUs, ${m.memory_gb} GB, ${m.kernel}; SIMD flags: ${m.simd || 'none of avx2/fma/avx512'}`);
  L.push(`- **qplay instruction set** (what its kernels chose on this CPU): \`${isa}\``);
  L.push(`- **ONNX Runtime**: onnxruntime-node ${m.onnxruntime} on Node ${m.node}`);
  L.push(`- **Data**: \`${data.path}\`, ${images} images (${data.note})`);
  L.push(`- **Settings**: ${THREADS} threads, batch ${BATCH}, ${ROUNDS} rounds of all measurements (qplay and ONNX Runtime ` +
         'alternating; each figure is its side\'s best round, the others listed), each the ' +
         `median of up to ${REPEAT} timed passes over all images after a ` +
         `${WARMUP_IMAGES}-image warm-up; a measurement stops repeating once its passes took ${TIME_BUDGET} s (never below 3 passes), ` +
         `and one whose warm-up predicts a pass longer than ${MAX_PASS_SECONDS} s times only the first images that fit ` +
         '(marked; ONNX Runtime then times the same images)');
  L.push(`- **Load average** (1/5/15 min) before: ${loadBefore}; after: ${loadAfter} — anything above ~0.5 means other work ` +
         'shared the cores and the absolute figures are low; both sides were exposed to it alike, adjacent in time');
  L.push('');

  L.push('## How to read this');
  L.push('');
  L.push('images/s is whole passes over the data set with the input batches already converted to float on both sides, ' +
         'so it measures inference, not pixel loops. The bold figure is the median pass; the parentheses give the slowest and ' +
         'fastest pass and how many were timed. **qplay/ORT** is qplay images/s divided by ONNX Runtime images/s: 1.0 is ' +
         'parity, 0.5 means qplay takes twice as long. The two runtimes use the 2 threads differently: qplay runs whole ' +
         'batches in parallel (one batch per thread, as `qplay eval` does), ONNX Runtime runs one batch at a time and ' +
         'splits each operator over its 2 intra-op threads. ' +
         (OTHER_REPORT ? `The same benchmark at another batch size: [${path.basename(OTHER_REPORT)}](${path.basename(OTHER_REPORT)}) ` +
                         '(the batch changes how much of a layer\'s activations stays in the caches, and each runtime ' +
                         'reacts differently). ' : '') +
         'On a shared or throttled machine compare the ratio, not ' +
         'the absolute figures, and compare against REFERENCE.md only through ONNX Runtime\'s re-measured column ' +
         '(REFERENCE.md\'s figures come from a 2-core machine with AVX-512' +
         (/avx512f/.test(m.simd) ? ').' : '; this one has none, which alone lowers ONNX Runtime\'s figures here).'));
  L.push('');

  L.push(`## Throughput (batch ${BATCH}, ${THREADS} threads, images/s)`);
  L.push('');
  row(['workload', 'qplay', 'qplay images/s', 'ONNX Runtime', 'ORT images/s', '**qplay/ORT**', 'REFERENCE.md ORT']);
  row(['---', '---', '---:', '---', '---:', '---:', '---:']);
  row(['1. FP32', '`fp32`', ips(R.fp32_q), 'all optimisations', ips(R.fp32_o), ratio(R.fp32_q, R.fp32_o), '7,100 - 10,800']);
  row([`1. FP32, ORT at batch ${ORT_BEST_FP32_BATCH}`, `\`fp32\` (batch ${BATCH})`, ips(R.fp32_q),
       `all optimisations, batch ${ORT_BEST_FP32_BATCH}`, ips(R.fp32_o32), ratio(R.fp32_q, R.fp32_o32), "its best FP32 batch"]);
  row([`2. ${MODEL_LABEL.u8}`, '`integer`', ips(R.int_u8_q), 'all optimisations (fused integer kernels)', ips(R.int_u8_o),
       ratio(R.int_u8_q, R.int_u8_o), 'about 10,000']);
  row([`2. ${MODEL_LABEL.u8}, ORT exact`, '`integer`', ips(R.int_u8_q),
       'all optimisations, exact uint8 x int8 products (`session.x64quantprecision=1`)', ips(R.int_u8_oexact),
       ratio(R.int_u8_q, R.int_u8_oexact), '-']);
  row([`2. ${MODEL_LABEL.u8}, qplay's own kernels`, '`integer --int-conv own`', ips(R.int_u8_q_own),
       'all optimisations (fused integer kernels)', ips(R.int_u8_o), ratio(R.int_u8_q_own, R.int_u8_o), '-']);
  row([`2. ${MODEL_LABEL.s8}`, '`integer`', ips(R.int_s8_q), 'all optimisations', ips(R.int_s8_o),
       ratio(R.int_s8_q, R.int_s8_o), 'about 4,000']);
  row([`3. ${MODEL_LABEL.u8}`, '`simulate`', ips(R.sim_u8_q), 'optimisations disabled', ips(R.sim_u8_o),
       ratio(R.sim_u8_q, R.sim_u8_o), 'about 3,000']);
  row([`3. ${MODEL_LABEL.s8}`, '`simulate`', ips(R.sim_s8_q), 'optimisations disabled', ips(R.sim_s8_o),
       ratio(R.sim_s8_q, R.sim_s8_o), 'about 3,000']);
  row(['4. capture, FP32', '`capture`', ips(R.cap_fp32_q), 'all optimisations, every intermediate an output',
       ips(R.cap_fp32_o), ratio(R.cap_fp32_q, R.cap_fp32_o), 'about 1,600']);
  row([`4. capture, ${MODEL_LABEL[CAPTURE_QDQ]}`, '`capture`', ips(R.cap_qdq_q),
       'optimisations disabled, every intermediate an output', ips(R.cap_qdq_o), ratio(R.cap_qdq_q, R.cap_qdq_o), 'about 750']);
  L.push('');
  const vnni = /avx512_vnni|avx_vnni/.test(m.simd);
  L.push((vnni
    ? 'Integer, uint8 model: this CPU has VNNI, so ONNX Runtime\'s default uint8 x int8 kernels use `vpdpbusd`, which ' +
      'multiplies bytes exactly and does 64 products per instruction. So do the oneDNN kernels (Debian\'s libdnnl) ' +
      'that compute the int32 sums of qplay\'s integer convs here (int8 weights with zero point 0, channel counts ' +
      'multiples of 16: every conv of ResNet-8 but the first); qplay requantizes them itself, so the codes are those ' +
      'of its own kernels, which multiply int16 pairs (`vpdpwssd`, 32 per instruction, with an exact integer ' +
      'Winograd) and run alone in the "own kernels" row (`--int-conv own`). '
    : 'Integer, uint8 model: ONNX Runtime\'s default uint8 x int8 kernels on AVX2 without VNNI add pairs of products ' +
      'into int16 with saturation (`vpmaddubsw`), which is faster but not the model\'s arithmetic (its accuracy in the ' +
      'table below is lower); qplay computes the exact products. ') +
         'The "ORT exact" row is ONNX Runtime with ' +
         '`session.x64quantprecision=1`, the same arithmetic as qplay ([quantization.md](quantization.md), section 8). ' +
         'FP32: qplay runs the 3x3 stride-1 convs of models without QuantizeLinear by Winograd F(2x2, 3x3) ' +
         '([ARCHITECTURE.md](ARCHITECTURE.md)); QDQ models keep ONNX Runtime\'s summation order.');
  L.push('');
  L.push('Capture: qplay\'s `--mode capture` runs the executor with `run_capturing`, which hands every tensor every ' +
         'node produces to a sink that copies it into storage for the batch (the run still goes through the batch in ' +
         'slices of 8 images; each worker reuses its storage for its next batch); ONNX Runtime runs a copy of the model with every node output added ' +
         `as a graph output (\`${QPLAY} bench MODEL --expose-all OUT.onnx\`; written to \`${exposed.fp32}\` and ` +
         `\`${exposed[CAPTURE_QDQ]}\`) and hands every one back to JavaScript.`);
  for (const [q, o] of [[R.cap_fp32_q, R.cap_fp32_o], [R.cap_qdq_q, R.cap_qdq_o]]) {
    if (!q.ok || !o.ok) continue;
    L.push(`- \`${path.basename(q.json.model)}\`: qplay captured ${q.json.captured_values} tensors per batch ` +
           `(${fmtInt(q.json.captured_mb_per_pass)} MB per pass); ONNX Runtime returned ${o.json.outputs} outputs ` +
           `(${fmtInt(o.json.output_mb_per_pass)} MB per pass).`);
  }
  L.push('');

  boundSection(L, R, m);

  L.push('## Batch-1 latency, FP32 (median ms per image)');
  L.push('');
  row(['', 'qplay', 'ONNX Runtime', '**qplay/ORT** (speed: ORT ms / qplay ms)']);
  row(['---', '---:', '---:', '---:']);
  const lat = (r) => (r.ok ? `**${r.json.median_ms_per_image.toFixed(3)}** (p10 ${r.json.p10_ms_per_image.toFixed(3)}, ` +
                             `p90 ${r.json.p90_ms_per_image.toFixed(3)})` : `failed: ${r.error}`);
  const latRatio = R.lat_q.ok && R.lat_o.ok ? (R.lat_o.json.median_ms_per_image / R.lat_q.json.median_ms_per_image).toFixed(3) : '-';
  row([`first ${LATENCY_IMAGES} images, one at a time, ${LATENCY_REPEAT} passes`, lat(R.lat_q), lat(R.lat_o), latRatio]);
  L.push('');
  L.push(`Both sides may use ${THREADS} intra-op threads: ONNX Runtime splits each operator; qplay splits a ` +
         'convolution\'s output positions over them only when it has more than 8 M multiply-adds (none of ResNet-8\'s ' +
         'has, so it runs on one thread here: handing work over cost more than it saved, `thread_pool.h`).');
  L.push('');

  L.push('## Peak memory and accuracy check');
  L.push('');
  L.push('Peak RSS in MB of each measurement\'s process (qplay: `getrusage` `ru_maxrss`; ONNX Runtime: ' +
         '`process.resourceUsage().maxRSS`, which includes Node itself). In parentheses the RSS after loading the model and ' +
         `the data and building the float input batches (${fmtInt(images * 3072 * 4 / 2 ** 20)} MB of them), before the first run. ` +
         'Accuracy is of the last timed pass (over the images that pass covered): equal figures on both sides show both ' +
         'computed the real thing; a difference of more than 0.2 points on the same images is flagged.');
  L.push('');
  row(['measurement', 'qplay peak RSS (baseline)', 'ORT peak RSS (baseline)', 'qplay accuracy', 'ORT accuracy', 'note']);
  row(['---', '---:', '---:', '---:', '---:', '---']);
  const memRows = [
    ['1. FP32', R.fp32_q, R.fp32_o],
    [`2. ${MODEL_LABEL.u8}, integer`, R.int_u8_q, R.int_u8_o],
    [`2. ${MODEL_LABEL.u8}, integer, ORT exact u8s8`, R.int_u8_q, R.int_u8_oexact],
    [`2. ${MODEL_LABEL.u8}, integer, qplay's own kernels`, R.int_u8_q_own, R.int_u8_o],
    [`2. ${MODEL_LABEL.s8}, integer`, R.int_s8_q, R.int_s8_o],
    [`3. ${MODEL_LABEL.u8}, simulate`, R.sim_u8_q, R.sim_u8_o],
    [`3. ${MODEL_LABEL.s8}, simulate`, R.sim_s8_q, R.sim_s8_o],
    ['4. capture, FP32', R.cap_fp32_q, R.cap_fp32_o],
    [`4. capture, ${MODEL_LABEL[CAPTURE_QDQ]}`, R.cap_qdq_q, R.cap_qdq_o],
    ['batch-1 latency, FP32', R.lat_q, R.lat_o],
  ];
  for (const [name, q, o] of memRows) row([name, q.na || rss(q), rss(o), q.na ? '-' : acc(q), acc(o), accuracyNote(q, o)]);
  L.push('');

  L.push('## `qplay eval` (what a user sees)');
  L.push('');
  L.push('One pass, timed by `qplay eval` itself, including the conversion of pixels to float and the scoring.' +
         (evalHasIntegerMode ? '' : ' (`qplay eval --mode integer` is not built yet, so no integer rows.)'));
  L.push('');
  row(['model', 'mode', 'images', 'accuracy', 'images/s', 'command']);
  row(['---', '---', '---:', '---:', '---:', '---']);
  for (const e of R.eval) {
    const j = e.r.ok ? e.r.json : null;
    row([MODEL_LABEL[e.key], e.mode, j ? j.images : '-', j ? `${(j.accuracy * 100).toFixed(2)}%` : '-',
         j ? `**${fmtInt(j.images_per_second)}**` : `failed: ${e.r.error}`, `\`${e.r.cmd}\``]);
  }
  L.push('');

  L.push('## Exact commands');
  L.push('');
  L.push('Run from the repository root (`make bench` = `node bench/run_bench.js` after building); each command once, in ' +
         `the order of their first run (the measurements ran ${ROUNDS} times, in this order each time):`);
  L.push('');
  L.push('```');
  for (const c of [...new Set(commands)]) L.push(c);
  L.push('```');
  L.push('');
  L.push('Raw JSON of every measurement: `build/bench/results.json`. To re-run one row, run its command; ' +
         '`qplay bench --help` and the header of `bench/ort_bench.js` list the options.');
  L.push('');
  return L.join('\n');
}

try {
  main();
} catch (e) {
  console.error(`run_bench: ${e.message}`);
  process.exit(1);
}
