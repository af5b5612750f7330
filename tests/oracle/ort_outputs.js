#!/usr/bin/env node
// Runs an ONNX model in ONNX Runtime over CIFAR-10 records and writes the raw outputs
// (float32 little-endian, images x classes) — the independent truth qplay is tested against.
// usage: ort_outputs.js MODEL DATA.bin LIMIT OPT(all|disabled) OUT.bin [THREADS] [BATCH]
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, dataPath, limitArg, opt, outPath, threadsArg, batchArg] = process.argv.slice(2);
  if (!outPath) throw new Error('usage: ort_outputs.js MODEL DATA.bin LIMIT all|disabled OUT.bin [THREADS] [BATCH]');
  const record = 3073;
  const data = fs.readFileSync(dataPath);
  const total = Math.floor(data.length / record);
  const limit = Math.min(Number(limitArg) > 0 ? Number(limitArg) : total, total);
  const batch = Number(batchArg || 100);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threadsArg || 2),
    interOpNumThreads: 1,
    graphOptimizationLevel: opt === 'disabled' ? 'disabled' : 'all',
  });
  const inputMeta = session.inputMetadata ? session.inputMetadata[0] : null;
  const dims = inputMeta && inputMeta.shape ? inputMeta.shape : ['N', 32, 32, 3];
  const nchw = dims[1] === 3;
  const chunks = [];
  for (let begin = 0; begin < limit; begin += batch) {
    const n = Math.min(batch, limit - begin);
    const x = new Float32Array(n * 3072);
    for (let i = 0; i < n; i++) {
      const rec = (begin + i) * record + 1;
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < 1024; p++) {
          const v = data[rec + c * 1024 + p];
          x[i * 3072 + (nchw ? c * 1024 + p : p * 3 + c)] = v;
        }
    }
    const shape = nchw ? [n, 3, 32, 32] : [n, 32, 32, 3];
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape) });
    chunks.push(Buffer.from(out[session.outputNames[0]].data.buffer.slice(0)));
  }
  fs.writeFileSync(outPath, Buffer.concat(chunks));
}

main().catch((e) => { console.error('ort_outputs: ' + e.message); process.exit(1); });
