// Helpers over the /quant shape: [{tensor, role, dtype, bits, axis, scales[], zero_points[], layer}].
import { num } from './format.js';

export function quantTensors(quant) {
  if (!quant) return [];
  if (Array.isArray(quant)) return quant;
  return quant.tensors || quant.quant_params || [];
}

export function quantLayers(quant) {
  if (!quant || Array.isArray(quant)) return [];
  return quant.layers || [];
}

export function qrange(q) {
  const bits = q.bits || 8;
  const signed = /^int/.test(q.dtype || 'int8');
  if (q.qmin !== undefined && q.qmax !== undefined) return [q.qmin, q.qmax];
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

function summary(values) {
  if (!values || !values.length) return '–';
  if (values.length === 1) return num(values[0]);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return lo === hi ? `${num(lo)} ×${values.length}` : `${num(lo)}…${num(hi)} (${values.length} ch)`;
}

// "s=0.0312 z=0", or with what = 'scale' | 'zero_point' one of them (per-channel: min…max).
export function paramsSummary(q, what) {
  if (what === 'scale') return summary(q.scales);
  if (what === 'zero_point') return summary(q.zero_points);
  if (q.scales && q.scales.length > 1) return `s=${summary(q.scales)}`;
  return `s=${summary(q.scales)} z=${summary(q.zero_points)}`;
}
