#!/usr/bin/env node
// tests/oracle/ort_outputs.js with the ONNX Runtime session option session.x64quantprecision=1
// (same arguments, same output file).
//
// Why: on x86-64 CPUs without VNNI, ONNX Runtime's default uint8 x int8 kernels add pairs of
// products with vpmaddubsw, which saturates at int16, so its optimised QDQ uint8 model is not
// the model's exact integer arithmetic. With this option ONNX Runtime computes those products
// exactly (onnxruntime PR #12088, "x86/64 U8S8 Gemm Precision Fix"), which is the arithmetic
// qplay's integer mode implements (docs/quantization.md, "Agreement").
'use strict';
const ort = require('onnxruntime-node');

const create = ort.InferenceSession.create;
ort.InferenceSession.create = (model, options) =>
  create.call(ort.InferenceSession, model, { ...options, extra: { session: { x64quantprecision: '1' } } });

require('../oracle/ort_outputs.js');
