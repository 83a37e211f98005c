import { writeFileSync } from 'node:fs';

export interface Curve {
  title: string;
  values: number[];
}

/** Moving average over `w` points (the paper's figures smooth the same way). */
function smooth(v: number[], w: number): number[] {
  return v.map((_, i) => {
    const s = v.slice(Math.max(0, i - w + 1), i + 1).filter(Number.isFinite);
    return s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  });
}

/**
 * Writes training curves as one SVG, a panel per curve: the raw values in light grey and their
 * moving average in blue, with the y range and the step count labelled. No dependencies.
 */
export function writeCurvesSvg(file: string, curves: readonly Curve[]): void {
  const W = 520;
  const H = 200;
  const pad = { l: 56, r: 12, t: 28, b: 28 };
  const panels = curves.map((c, idx) => {
    const y0 = idx * H;
    const vals = c.values;
    const finite = vals.filter(Number.isFinite);
    const lo = finite.length ? Math.min(...finite) : 0;
    const hi = finite.length ? Math.max(...finite) : 1;
    const span = hi - lo || 1;
    const x = (i: number) => pad.l + ((W - pad.l - pad.r) * i) / Math.max(1, vals.length - 1);
    const y = (v: number) => y0 + pad.t + (H - pad.t - pad.b) * (1 - (v - lo) / span);
    const path = (v: number[]) =>
      v
        .map((p, i) => (Number.isFinite(p) ? `${x(i).toFixed(1)},${y(p).toFixed(1)}` : null))
        .filter(Boolean)
        .join(' ');
    const sm = smooth(vals, Math.max(1, Math.round(vals.length / 20)));
    return [
      `<text x="${pad.l}" y="${y0 + 18}" font-size="13" font-family="sans-serif">${c.title}</text>`,
      `<rect x="${pad.l}" y="${y0 + pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="none" stroke="#ccc"/>`,
      `<text x="${pad.l - 4}" y="${y0 + pad.t + 10}" font-size="10" text-anchor="end" font-family="sans-serif">${hi.toPrecision(3)}</text>`,
      `<text x="${pad.l - 4}" y="${y0 + H - pad.b}" font-size="10" text-anchor="end" font-family="sans-serif">${lo.toPrecision(3)}</text>`,
      `<text x="${W - pad.r}" y="${y0 + H - 8}" font-size="10" text-anchor="end" font-family="sans-serif">step ${vals.length}</text>`,
      `<polyline fill="none" stroke="#bbb" stroke-width="1" points="${path(vals)}"/>`,
      `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${path(sm)}"/>`,
    ].join('\n');
  });
  writeFileSync(file, `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H * curves.length}" viewBox="0 0 ${W} ${H * curves.length}">\n<rect width="100%" height="100%" fill="white"/>\n${panels.join('\n')}\n</svg>\n`);
}
