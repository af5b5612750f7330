// Number formatting shared by tables and charts.

export function num(x, digits = 4) {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'string') return x === 'inf' ? '∞' : x === '-inf' ? '−∞' : x;
  if (!Number.isFinite(x)) return x > 0 ? '∞' : x < 0 ? '−∞' : 'NaN';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(Math.max(1, digits - 2));
  return Number(x.toPrecision(digits)).toString();
}

export function db(x) {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'string') return num(x);
  return `${x.toFixed(2)} dB`;
}

export function pct(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return `${(100 * x).toFixed(digits)}%`;
}

// "inf"/"-inf" strings (docs/ANALYSIS.md) as numbers for charts.
export function finite(x, cap = 120) {
  if (x === 'inf') return cap;
  if (x === '-inf') return -cap;
  if (x === null || x === undefined || typeof x !== 'number' || Number.isNaN(x)) return null;
  return Math.max(-cap, Math.min(cap, x));
}

export function seconds(s) {
  if (s === null || s === undefined) return '–';
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

export function when(t) {
  if (!t) return '';
  const d = typeof t === 'number' ? new Date(t * (t < 1e12 ? 1000 : 1)) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toLocaleString();
}
