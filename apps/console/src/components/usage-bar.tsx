import { formatPercent } from '../lib/format';

/** A horizontal bar for a share (0–100); a dash when unknown. */
export function UsageBar({
  percent,
  label,
  detail,
}: {
  percent?: number | null;
  label: string;
  detail?: string;
}) {
  if (percent === undefined || percent === null || !Number.isFinite(percent)) {
    return <span className="muted">—</span>;
  }
  const p = Math.min(100, Math.max(0, percent));
  const level = p >= 90 ? 'high' : p >= 70 ? 'mid' : 'low';
  return (
    <span className="usage" title={detail ?? `${label} ${formatPercent(p)}`}>
      <span
        className="usage-track"
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(p)}
      >
        <span className={`usage-fill usage-${level}`} style={{ width: `${p}%` }} />
      </span>
      <span className="usage-text">{formatPercent(p)}</span>
    </span>
  );
}
