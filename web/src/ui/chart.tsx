// A uPlot time-series chart sized to its container.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
  values: Array<number | null>;
}

export function TimeChart({ title, times, series, unit }: { title: string; times: number[]; series: Series[]; unit?: string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const host = el.current;
    if (!host) return;
    const plot = new uPlot(
      {
        width: Math.max(280, host.clientWidth),
        height: 180,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${v.toFixed(2)}${unit ? ` ${unit}` : ''}`) }))],
        axes: [{}, { size: 50 }],
        legend: { live: true },
      },
      [times, ...series.map((s) => s.values)] as uPlot.AlignedData,
      host,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, host.clientWidth), height: 180 }));
    ro.observe(host);
    return () => (ro.disconnect(), plot.destroy());
  }, [times, series, unit]);
  return (
    <figure class="card chart-card" aria-label={title}>
      <figcaption class="strong">{title}</figcaption>
      <div ref={el} role="img" aria-label={`${title} chart: ${series.map((s) => s.label).join(', ')}`} />
    </figure>
  );
}
