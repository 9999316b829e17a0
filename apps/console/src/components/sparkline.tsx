import { sparklinePoints } from '../lib/sparkline';

const W = 160;
const H = 36;

/** A small inline SVG line chart of the latest values. */
export function Sparkline({
  values,
  max,
  label,
  current,
}: {
  values: readonly number[];
  max?: number;
  label: string;
  current: string;
}) {
  const points = sparklinePoints(values, W, H, max);
  return (
    <figure className="spark">
      <figcaption>
        <span>{label}</span>
        <strong>{current}</strong>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        width="100%"
        height={H}
        preserveAspectRatio="none"
        role="img"
        aria-label={`${label}: ${current}`}
      >
        {points ? (
          <polyline
            points={points}
            fill="none"
            strokeWidth="1.5"
            vectorEffect="non-scaling-stroke"
          />
        ) : (
          <text x={W / 2} y={H / 2 + 4} textAnchor="middle">
            waiting for telemetry…
          </text>
        )}
      </svg>
    </figure>
  );
}
