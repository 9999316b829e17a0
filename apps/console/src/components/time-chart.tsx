import { useEffect, useRef, useState } from 'react';
import type uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartLine {
  label: string;
  values: Array<number | null>;
  color: string;
}

const HEIGHT = 170;

/**
 * A time-series chart (uPlot, loaded on first use). `t` in seconds; a null value is a gap.
 * Percent charts run 0–100; the others scale to the data, with `format` on the y axis.
 */
export function TimeChart({
  title,
  t,
  lines,
  range,
  percent = false,
  format,
}: {
  title: string;
  t: number[];
  lines: ChartLine[];
  /** The window shown, in seconds (the chart spans it even where points are missing). */
  range: [number, number];
  percent?: boolean;
  format: (v: number) => string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    const el = box.current;
    if (!el) {
      return;
    }
    let chart: uPlot | undefined;
    let observer: ResizeObserver | undefined;
    let gone = false;
    import('uplot')
      .then(({ default: UPlot }) => {
        if (gone) {
          return;
        }
        const width = Math.max(200, el.clientWidth);
        chart = new UPlot(
          {
            width,
            height: HEIGHT,
            scales: {
              x: { time: true, range: () => range },
              y: percent
                ? { range: [0, 100] }
                : { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
            },
            series: [
              {},
              ...lines.map((l) => ({
                label: l.label,
                stroke: l.color,
                width: 1.5,
                value: (_u: uPlot, v: number | null) => (v === null ? '—' : format(v)),
              })),
            ],
            axes: [{}, { size: 70, values: (_u, vals) => vals.map((v) => format(v)) }],
            legend: { live: true },
          },
          [t, ...lines.map((l) => l.values)] as uPlot.AlignedData,
          el,
        );
        if (typeof ResizeObserver !== 'undefined') {
          observer = new ResizeObserver(() => {
            chart?.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT });
          });
          observer.observe(el);
        }
      })
      .catch(() => setFailed(true));
    return () => {
      gone = true;
      observer?.disconnect();
      chart?.destroy();
    };
  }, [t, lines, range[0], range[1], percent, format]);
  return (
    <figure className="time-chart" aria-label={title}>
      <figcaption>{title}</figcaption>
      {failed ? <p className="muted">The chart could not be drawn in this browser.</p> : null}
      <div ref={box} />
    </figure>
  );
}
