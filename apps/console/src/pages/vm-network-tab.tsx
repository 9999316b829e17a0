import { useState, type FormEvent } from 'react';
import type {
  GuestNetworkView,
  InterfaceNetworkView,
  NetworkConfigureBody,
  NetworkConfigureView,
  VmView,
} from '@lq/api';
import { can } from '../auth/permissions';
import { useMe, useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { formatTime } from '../lib/format';
import { useLoad } from '../lib/hooks';

const BACKENDS: Record<string, string> = {
  netplan: 'netplan',
  networkmanager: 'NetworkManager',
  networkd: 'systemd-networkd',
  ifupdown: 'ifupdown (/etc/network/interfaces)',
};

/** Words of a free-text list (spaces, commas or new lines between them). */
export function wordsOf(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((w) => w.trim())
    .filter(Boolean);
}

interface FormState {
  name: string;
  addressing: 'dhcp' | 'static';
  addresses: string;
  gateway: string;
  dns: string;
  search: string;
  mtu: string;
  confirmSeconds: string;
}

function formOf(i: InterfaceNetworkView | undefined, name: string): FormState {
  return {
    name,
    addressing: i?.addressing ?? 'dhcp',
    addresses: i?.addresses.join('\n') ?? '',
    gateway: i?.gateway ?? '',
    dns: i?.dns_servers.join(' ') ?? '',
    search: i?.search_domains.join(' ') ?? '',
    mtu: i?.mtu ? String(i.mtu) : '',
    confirmSeconds: '60',
  };
}

/** The PUT body of the form (the control plane and the agent check the values). */
export function bodyOf(f: FormState, dryRun: boolean): NetworkConfigureBody {
  const mtu = f.mtu.trim() === '' ? null : Number(f.mtu);
  return {
    interfaces: [
      {
        name: f.name.trim(),
        addressing: f.addressing,
        addresses: f.addressing === 'static' ? wordsOf(f.addresses) : [],
        gateway: f.addressing === 'static' && f.gateway.trim() ? f.gateway.trim() : null,
        dns_servers: wordsOf(f.dns),
        search_domains: wordsOf(f.search),
        mtu,
      },
    ],
    ...(f.confirmSeconds.trim() ? { confirm_timeout_seconds: Number(f.confirmSeconds) } : {}),
    ...(dryRun ? { dry_run: true } : {}),
  };
}

function describeIface(i: InterfaceNetworkView): string {
  return i.addressing === 'dhcp' ? 'DHCP' : i.addresses.join(', ') || '—';
}

/** The guest's network configuration, and (guest.network.configure) a form to change it. */
export function NetworkTab({ vm }: { vm: VmView }) {
  const { api } = useSession();
  const me = useMe();
  const project = vm.project_id || 'default';
  const canConfigure = can(me, 'guest.network.configure', project);
  const path = `/api/vms/${encodeURIComponent(vm.id)}/network`;
  const net = useLoad((signal) => api.json<GuestNetworkView>(path, { signal }), [api, path]);
  const [form, setForm] = useState<FormState>();
  const [preview, setPreview] = useState<NetworkConfigureView>();
  const [result, setResult] = useState<NetworkConfigureView>();
  const [busy, setBusy] = useState<'preview' | 'apply'>();
  const [error, setError] = useState<unknown>();

  const n = net.data;
  const names = [
    ...new Set([
      ...(n?.interfaces ?? []).map((i) => i.name),
      ...(n?.live ?? []).map((l) => l.name),
    ]),
  ];
  const f =
    form ?? (n ? formOf(n.interfaces[0], n.interfaces[0]?.name ?? names[0] ?? '') : undefined);
  const set = (patch: Partial<FormState>) => {
    setForm({ ...f!, ...patch });
    setPreview(undefined);
  };

  async function send(dryRun: boolean, e?: FormEvent) {
    e?.preventDefault();
    if (!f) {
      return;
    }
    setBusy(dryRun ? 'preview' : 'apply');
    setError(undefined);
    if (!dryRun) {
      setResult(undefined);
    }
    try {
      const r = await api.json<NetworkConfigureView>(path, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(bodyOf(f, dryRun)),
      });
      if (dryRun) {
        setPreview(r);
      } else {
        setResult(r);
        net.reload();
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  }

  if (net.error !== undefined && !n) {
    return <ErrorNotice error={net.error} onRetry={net.reload} />;
  }
  if (!n || !f) {
    return (
      <p className="muted" role="status">
        <span className="spinner" aria-hidden="true" /> Reading the guest network configuration…
      </p>
    );
  }
  return (
    <div>
      <section className="card" aria-label="Network configuration">
        <h2>Network configuration</h2>
        <p>
          Stack: <strong>{n.backend ? BACKENDS[n.backend] : 'none the agent can configure'}</strong>
          {n.config_files.length > 0 && (
            <span className="muted small"> · {n.config_files.join(', ')}</span>
          )}
        </p>
        <table className="table compact" aria-label="Configured interfaces">
          <thead>
            <tr>
              <th>Interface</th>
              <th>Addresses</th>
              <th>Gateway</th>
              <th>DNS</th>
              <th>Search</th>
              <th>MTU</th>
              <th>Live addresses</th>
            </tr>
          </thead>
          <tbody>
            {names.map((name) => {
              const i = n.interfaces.find((x) => x.name === name);
              const l = n.live.find((x) => x.name === name);
              return (
                <tr key={name}>
                  <td>{name}</td>
                  <td>{i ? describeIface(i) : <span className="muted">not configured</span>}</td>
                  <td>{i?.gateway ?? '—'}</td>
                  <td>{i?.dns_servers.join(', ') || '—'}</td>
                  <td>{i?.search_domains.join(', ') || '—'}</td>
                  <td>{i?.mtu ?? 'default'}</td>
                  <td>{l ? [...l.ipv4, ...l.ipv6].join(', ') || '—' : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {n.last_apply && (
          <p className="muted small" aria-label="Last apply">
            Last change {n.last_apply.state.replace('_', ' ')}
            {n.last_apply.reason ? ` (${n.last_apply.reason})` : ''} at{' '}
            {formatTime(n.last_apply.changed_at)}
          </p>
        )}
        <p className="actions">
          <button type="button" onClick={net.reload} disabled={net.loading}>
            Refresh
          </button>
        </p>
      </section>
      {canConfigure && n.backend && (
        <section className="card">
          <h2>Change the network</h2>
          <p className="muted small">
            The guest applies the change and restores its previous configuration by itself unless it
            reports the new addresses before the confirmation deadline.
          </p>
          <form
            className="form"
            aria-label="Configure network"
            onSubmit={(e) => void send(false, e)}
          >
            <div className="form-row">
              <label>
                Interface
                <input
                  name="name"
                  list="lq-interfaces"
                  value={f.name}
                  onChange={(e) => set({ name: e.target.value })}
                />
                <datalist id="lq-interfaces">
                  {names.map((x) => (
                    <option key={x} value={x} />
                  ))}
                </datalist>
              </label>
              <label>
                Addressing
                <select
                  name="addressing"
                  value={f.addressing}
                  onChange={(e) => set({ addressing: e.target.value as FormState['addressing'] })}
                >
                  <option value="dhcp">DHCP</option>
                  <option value="static">Static</option>
                </select>
              </label>
              <label>
                MTU (empty: default)
                <input
                  name="mtu"
                  inputMode="numeric"
                  value={f.mtu}
                  onChange={(e) => set({ mtu: e.target.value })}
                />
              </label>
            </div>
            {f.addressing === 'static' && (
              <div className="form-row">
                <label>
                  Addresses (CIDR, one per line)
                  <textarea
                    name="addresses"
                    rows={2}
                    placeholder="10.0.2.50/24"
                    value={f.addresses}
                    onChange={(e) => set({ addresses: e.target.value })}
                  />
                </label>
                <label>
                  Gateway
                  <input
                    name="gateway"
                    placeholder="10.0.2.2"
                    value={f.gateway}
                    onChange={(e) => set({ gateway: e.target.value })}
                  />
                </label>
              </div>
            )}
            <div className="form-row">
              <label>
                DNS servers
                <input
                  name="dns"
                  placeholder="10.0.2.3 1.1.1.1"
                  value={f.dns}
                  onChange={(e) => set({ dns: e.target.value })}
                />
              </label>
              <label>
                Search domains
                <input
                  name="search"
                  placeholder="example.com"
                  value={f.search}
                  onChange={(e) => set({ search: e.target.value })}
                />
              </label>
              <label>
                Roll back unless confirmed within (seconds)
                <input
                  name="confirm_timeout_seconds"
                  inputMode="numeric"
                  value={f.confirmSeconds}
                  onChange={(e) => set({ confirmSeconds: e.target.value })}
                />
              </label>
            </div>
            <p className="actions">
              <button type="button" onClick={() => void send(true)} disabled={busy !== undefined}>
                {busy === 'preview' ? 'Rendering…' : 'Preview'}
              </button>
              <button type="submit" className="primary" disabled={busy !== undefined}>
                {busy === 'apply' ? 'Applying and waiting for the guest…' : 'Apply'}
              </button>
            </p>
          </form>
          {error !== undefined && <ErrorNotice error={error} />}
          {preview && (
            <div aria-label="Preview">
              {preview.files.map((file) => (
                <figure key={file.path}>
                  <figcaption>
                    {BACKENDS[preview.backend ?? ''] ?? preview.backend} would write{' '}
                    <code>{file.path}</code>
                  </figcaption>
                  <pre className="output">{file.content}</pre>
                </figure>
              ))}
            </div>
          )}
          {result && (
            <div
              className={
                result.outcome === 'confirmed' ? 'notice notice-ok' : 'notice notice-error'
              }
              role="status"
            >
              {result.outcome === 'confirmed'
                ? `Applied and confirmed: the guest reports ${result.interfaces
                    .map((i) => `${i.name} ${describeIface(i)}`)
                    .join('; ')}.`
                : result.outcome === 'rolled_back'
                  ? `Rolled back: the guest restored its previous configuration (${
                      result.status?.reason ?? 'no confirmation'
                    }).`
                  : `Applied; waiting for a confirmation (apply ${result.apply_id}).`}
            </div>
          )}
        </section>
      )}
    </div>
  );
}
