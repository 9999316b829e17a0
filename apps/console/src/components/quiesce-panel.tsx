import { useEffect, useState } from 'react';
import type { FormEvent } from 'react';
import type { HookView, QuiesceStatusView, QuiesceView, ThawView } from '@lq/api';
import type { ApiClient } from '../api/client';
import { UserMessage } from '../api/errors';
import { formatTime } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { ErrorNotice } from './error-notice';

/** "1 min 05 s" from milliseconds; "now" at or below zero. */
export function formatCountdown(ms: number): string {
  if (ms <= 0) {
    return 'now';
  }
  const s = Math.ceil(ms / 1000);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
}

/** The mount points a user typed (comma- or space-separated); empty: every freezable one. */
export function parseMountPoints(text: string): string[] | UserMessage {
  const points = text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
  const bad = points.find((p) => !p.startsWith('/'));
  return bad ? new UserMessage(`Mount points are absolute paths: “${bad}” is not.`) : points;
}

/** A clock that ticks every second while `on`. */
function useNow(on: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) {
      return;
    }
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [on]);
  return now;
}

export function HookResults({ hooks }: { hooks: HookView[] }) {
  if (hooks.length === 0) {
    return <p className="muted small">No hooks ran.</p>;
  }
  return (
    <table className="table compact" aria-label="Hook results">
      <thead>
        <tr>
          <th>Hook</th>
          <th>Phase</th>
          <th>Result</th>
          <th>Took</th>
        </tr>
      </thead>
      <tbody>
        {hooks.map((h) => (
          <tr key={`${h.phase}/${h.name}`}>
            <td>{h.name}</td>
            <td>{h.phase}</td>
            <td>
              {h.timed_out
                ? 'timed out'
                : h.signal
                  ? `killed by ${h.signal}`
                  : h.exit_code === 0
                    ? 'exit 0 (success)'
                    : `exit ${h.exit_code ?? '?'}`}
            </td>
            <td>{h.duration_ms} ms</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * Freeze and thaw a VM's filesystems: its status (live countdown to the agent's own thaw), a
 * freeze form (mount points, timeout) and the hooks each step ran. Shown to callers holding
 * guest.quiesce; the status alone to the rest (vm.read).
 */
export function QuiescePanel({
  api,
  vmId,
  canQuiesce,
  onChanged,
}: {
  api: ApiClient;
  vmId: string;
  canQuiesce: boolean;
  onChanged: () => void;
}) {
  const base = `/api/vms/${encodeURIComponent(vmId)}`;
  const status = useLoad(
    (signal) => api.json<QuiesceStatusView>(`${base}/quiesce`, { signal }),
    [api, base],
  );
  const [mounts, setMounts] = useState('');
  const [timeout, setTimeoutSeconds] = useState('60');
  const [busy, setBusy] = useState<'freeze' | 'thaw'>();
  const [error, setError] = useState<unknown>();
  const [last, setLast] = useState<{ what: string; hooks: HookView[] }>();
  const frozen = status.data?.frozen === true;
  const deadline = status.data?.thaw_deadline ? Date.parse(status.data.thaw_deadline) : undefined;
  const now = useNow(frozen && deadline !== undefined);
  const left = deadline !== undefined ? deadline - now : undefined;
  const { reload } = status;

  // When the countdown runs out, ask every second until the agent has thawed by itself. (A
  // one-shot timer re-armed on each countdown tick was cleared by the next tick before it fired:
  // the page then showed "Frozen" long after the agent's own thaw.)
  const expired = frozen && left !== undefined && left <= 0;
  useEffect(() => {
    if (expired) {
      const t = setInterval(reload, 1000);
      return () => clearInterval(t);
    }
  }, [expired, reload]);

  async function freeze(e: FormEvent) {
    e.preventDefault();
    const points = parseMountPoints(mounts);
    const seconds = Number(timeout);
    if (points instanceof UserMessage) {
      setError(points);
      return;
    }
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) {
      setError(new UserMessage('The timeout is a whole number of seconds from 1 to 86400.'));
      return;
    }
    setBusy('freeze');
    setError(undefined);
    try {
      const r = await api.post<QuiesceView>(`${base}/quiesce`, {
        mount_points: points.length ? points : undefined,
        timeout_seconds: seconds,
      });
      setLast({ what: `Froze ${r.frozen.join(', ') || 'nothing'}`, hooks: r.hooks });
      reload();
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  }

  async function thaw() {
    setBusy('thaw');
    setError(undefined);
    try {
      const r = await api.post<ThawView>(`${base}/thaw`, {});
      setLast({
        what: r.was_frozen ? `Thawed ${r.thawed.join(', ')}` : 'Nothing was frozen',
        hooks: r.hooks,
      });
      reload();
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  }

  const s = status.data;
  return (
    <section aria-label="Filesystem freeze">
      <dl className="facts" data-testid="quiesce-status">
        <dt>Filesystems</dt>
        <dd>
          {!s ? (
            status.error !== undefined ? (
              <span className="muted">unknown</span>
            ) : (
              <span className="muted">asking the agent…</span>
            )
          ) : s.frozen ? (
            <strong>Frozen: {s.mount_points.join(', ')}</strong>
          ) : (
            'Not frozen'
          )}
        </dd>
        {s?.frozen && (
          <>
            <dt>Frozen at</dt>
            <dd>{formatTime(s.frozen_at ?? undefined)}</dd>
            <dt>Auto-thaw</dt>
            <dd role="timer" aria-label="Auto-thaw countdown">
              {left === undefined
                ? 'none'
                : `in ${formatCountdown(left)} (${formatTime(s.thaw_deadline ?? undefined)})`}
            </dd>
          </>
        )}
        {s?.last_auto_thaw && (
          <>
            <dt>Last auto-thaw</dt>
            <dd>{formatTime(s.last_auto_thaw)}</dd>
          </>
        )}
      </dl>
      {status.error !== undefined && !s && <ErrorNotice error={status.error} />}
      {canQuiesce && (
        <form className="form" aria-label="Freeze filesystems" onSubmit={(e) => void freeze(e)}>
          <div className="form-row">
            <label>
              Mount points (empty: every freezable filesystem)
              <input
                name="mount_points"
                placeholder="/ /var/lib/data"
                value={mounts}
                onChange={(e) => setMounts(e.target.value)}
              />
            </label>
            <label>
              Auto-thaw after (seconds)
              <input
                name="timeout_seconds"
                inputMode="numeric"
                value={timeout}
                onChange={(e) => setTimeoutSeconds(e.target.value)}
              />
            </label>
          </div>
          <p className="actions">
            <button type="submit" disabled={busy !== undefined || frozen}>
              {busy === 'freeze' ? 'Freezing…' : 'Freeze filesystems'}
            </button>
            <button type="button" onClick={() => void thaw()} disabled={busy !== undefined}>
              {busy === 'thaw' ? 'Thawing…' : 'Thaw'}
            </button>
            <button type="button" onClick={reload} disabled={status.loading}>
              Refresh status
            </button>
          </p>
        </form>
      )}
      {last && (
        <div className="notice notice-ok" role="status">
          <p>{last.what}.</p>
          <HookResults hooks={last.hooks} />
        </div>
      )}
      {error !== undefined && <ErrorNotice error={error} />}
    </section>
  );
}
