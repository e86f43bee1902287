// Reference vs live distribution of one feature as plain SVG: each bin's share of the rows, the
// reference as a grey bar and the live window as a translucent blue bar over it (numeric), or the two
// side by side per category. Shares, not counts, so a 2,000-row reference and a 200-row window compare.
export interface HistogramData {
  feature: string;
  /** Bin labels, in order (numeric: "< e0", "e0 – e1", …, "≥ eN"). */
  bins: string[];
  reference: number[];
  live: number[];
  overlay: boolean;
}

const W = 640;
const H = 200;
const PAD = { left: 40, right: 8, top: 8, bottom: 44 };

export function binLabels(edges: number[]): string[] {
  const f = (x: number) => (Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 0.01) ? x.toPrecision(3) : String(Number(x.toFixed(2))));
  return [`< ${f(edges[0])}`, ...edges.slice(1).map((e, i) => `${f(edges[i])} – ${f(e)}`), `≥ ${f(edges[edges.length - 1])}`];
}

export function Histogram({ data }: { data: HistogramData }) {
  const share = (xs: number[]) => {
    const total = xs.reduce((a, b) => a + b, 0);
    return xs.map((x) => (total ? x / total : 0));
  };
  const ref = share(data.reference);
  const live = share(data.live);
  const top = Math.max(0.01, ...ref, ...live);
  const n = data.bins.length;
  const slot = (W - PAD.left - PAD.right) / n;
  const y = (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / top);
  const base = H - PAD.bottom;
  const labelEvery = Math.ceil(n / 6);
  const pctText = (v: number) => `${(v * 100).toFixed(1)} %`;
  const summary = `${data.feature}: reference vs live share of rows per bin`;
  return (
    <figure class="histogram" aria-label={summary}>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary}>
        <line x1={PAD.left} x2={W - PAD.right} y1={base} y2={base} stroke="#9ca3af" />
        <text x={PAD.left - 4} y={y(top) + 4} text-anchor="end" class="axis">
          {pctText(top)}
        </text>
        <text x={PAD.left - 4} y={base} text-anchor="end" class="axis">
          0
        </text>
        {data.bins.map((label, i) => {
          const x = PAD.left + i * slot;
          const rw = data.overlay ? slot * 0.9 : slot * 0.42;
          const lx = data.overlay ? x + slot * 0.05 : x + slot * 0.5;
          const rx = x + slot * 0.05;
          return (
            <g key={label} class="bin" data-bin={i} data-label={label} data-reference={data.reference[i]} data-live={data.live[i]} data-reference-share={ref[i]} data-live-share={live[i]}>
              <title>{`${label}: reference ${pctText(ref[i])} (${data.reference[i]}), live ${pctText(live[i])} (${data.live[i]})`}</title>
              <rect x={rx} y={y(ref[i])} width={rw} height={base - y(ref[i])} fill="#9ca3af" />
              <rect x={lx} y={y(live[i])} width={rw} height={base - y(live[i])} fill="#2563eb" fill-opacity={data.overlay ? 0.55 : 0.9} />
              {i % labelEvery === 0 && (
                <text x={x + slot / 2} y={base + 14} text-anchor="middle" class="axis">
                  {label}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption class="small">
        <span class="swatch" style={{ background: '#9ca3af' }} /> reference <span class="swatch" style={{ background: '#2563eb' }} /> live window (share of rows per bin)
      </figcaption>
    </figure>
  );
}
