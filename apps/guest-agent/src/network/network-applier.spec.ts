// The safe apply against test doubles of ifup/ifdown that record their calls: the files are real
// (a temporary directory), the guest's network is never touched.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ErrorCode, type NetIface } from '@lq/proto';
import { defaultConfig, type AgentConfig } from '../config.js';
import { Logger } from '../logger.js';
import { NetworkApplier } from './network-applier.js';

const OLD = 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n';
const NEW: NetIface = {
  name: 'eth0',
  dhcp: false,
  addresses: ['10.0.2.50/24'],
  gateway: '10.0.2.2',
  dns: [],
  search: [],
  mtu: 0,
};

describe('the network safe apply', () => {
  let dir: string;
  let config: AgentConfig;
  let appliers: NetworkApplier[];
  const calls = () =>
    existsSync(join(dir, 'calls'))
      ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n')
      : [];
  const file = () => readFileSync(config.network.interfaces_file, 'utf8');
  const applier = () => {
    const a = new NetworkApplier(config, new Logger('silent'));
    appliers.push(a);
    return a;
  };
  const double = (name: string, body = '') => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\necho "${name} $*" >> ${join(dir, 'calls')}\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-net-'));
    appliers = [];
    config = defaultConfig();
    config.network = {
      ...config.network,
      backend: 'auto',
      confirm_timeout_ms: 1000,
      state_file: join(dir, 'state', 'network-pending.json'),
      netplan_dir: join(dir, 'no-netplan'),
      nm_connections_dir: join(dir, 'no-nm'),
      networkd_dir: join(dir, 'no-networkd'),
      interfaces_file: join(dir, 'interfaces'),
    };
    config.commands = {
      ...config.commands,
      netplan: join(dir, 'absent-netplan'),
      nmcli: join(dir, 'absent-nmcli'),
      networkctl: join(dir, 'absent-networkctl'),
      ifup: double('ifup'),
      ifdown: double('ifdown'),
    };
    writeFileSync(config.network.interfaces_file, OLD);
  });

  afterEach(() => {
    appliers.forEach((a) => a.stop());
    rmSync(dir, { recursive: true, force: true });
  });

  it('should detect ifupdown and read the interfaces file when asked for the configuration', async () => {
    const r = await applier().get();
    expect(r.backend).toBe('ifupdown');
    expect(r.files).toEqual([config.network.interfaces_file]);
    expect(r.interfaces).toEqual([{ ...NEW, dhcp: true, addresses: [], gateway: '' }]);
  });

  it('should apply, keep the change and forget the way back when confirmed in time', async () => {
    const a = applier();
    const r = await a.configure([NEW], 0, false);
    expect(r.backend).toBe('ifupdown');
    expect(r.previous).toEqual([{ ...NEW, dhcp: true, addresses: [], gateway: '' }]);
    expect(file()).toContain(
      'iface eth0 inet static\n    address 10.0.2.50\n    netmask 255.255.255.0',
    );
    expect(calls()).toEqual(['ifdown -f eth0', 'ifup eth0']);
    const pending = JSON.parse(readFileSync(config.network.state_file, 'utf8')) as {
      previous: Record<string, string>;
    };
    expect(pending.previous[config.network.interfaces_file]).toBe(OLD);
    expect(a.status()).toMatchObject({ applyId: r.applyId, state: 'pending' });

    expect(await a.confirm(r.applyId)).toMatchObject({ state: 'confirmed' });
    expect(existsSync(config.network.state_file)).toBe(false);
    await sleep(1500);
    expect(file()).toContain('address 10.0.2.50');
    expect(calls()).toEqual(['ifdown -f eth0', 'ifup eth0']);
  });

  it('should restore and re-apply the previous file when no confirmation comes by the deadline', async () => {
    const a = applier();
    const r = await a.configure([NEW], 0, false);
    for (let i = 0; i < 100 && a.status()?.state === 'pending'; i++) {
      await sleep(100);
    }
    expect(a.status()).toMatchObject({
      applyId: r.applyId,
      state: 'rolled_back',
      reason: 'confirmation deadline passed',
    });
    expect(file()).toBe(OLD);
    expect(calls()).toEqual(['ifdown -f eth0', 'ifup eth0', 'ifdown -f eth0', 'ifup eth0']);
    expect(existsSync(config.network.state_file)).toBe(false);
    // A late confirmation learns the apply was rolled back.
    expect(await a.confirm(r.applyId)).toMatchObject({ state: 'rolled_back' });
  });

  it('should roll back at start when an earlier agent left an apply unconfirmed', async () => {
    config.network.confirm_timeout_ms = 60_000;
    const first = applier();
    await first.configure([NEW], 0, false);
    first.stop();
    expect(file()).toContain('address 10.0.2.50');
    const second = applier();
    await second.restore();
    expect(file()).toBe(OLD);
    expect(second.status()).toMatchObject({
      state: 'rolled_back',
      reason: 'agent restarted before confirmation',
    });
    expect(existsSync(config.network.state_file)).toBe(false);
  });

  it('should restore the previous file at once and say so when the apply command fails', async () => {
    config.commands.ifup = double(
      'ifup',
      '[ -f ' + join(dir, 'fail') + ' ] && { echo "no such device" >&2; exit 1; }; exit 0',
    );
    writeFileSync(join(dir, 'fail'), '');
    const a = applier();
    const err = await a.configure([NEW], 0, false).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.IO_ERROR });
    expect((err as Error).message).toContain('no such device');
    expect((err as Error).message).toContain('the previous configuration was restored');
    expect(file()).toBe(OLD);
    expect(a.status()).toMatchObject({ state: 'rolled_back' });
  });

  it('should refuse a second apply while one waits for its confirmation', async () => {
    config.network.confirm_timeout_ms = 60_000;
    const a = applier();
    await a.configure([NEW], 0, false);
    await expect(a.configure([NEW], 0, false)).rejects.toMatchObject({
      code: ErrorCode.ALREADY_EXISTS,
    });
  });

  it('should render without writing or running anything on a dry run', async () => {
    const r = await applier().configure([NEW], 0, true);
    expect(r.files[0]?.content).toContain('address 10.0.2.50');
    expect(file()).toBe(OLD);
    expect(calls()).toEqual([]);
    expect(existsSync(config.network.state_file)).toBe(false);
  });

  it('should refuse a confirmation window outside the configured bounds', async () => {
    await expect(applier().configure([NEW], 10_000_000, false)).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    });
    await expect(applier().configure([NEW], 5, false)).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    });
    expect(calls()).toEqual([]);
  });

  it('should answer NOT_FOUND naming the stacks when none is present', async () => {
    rmSync(config.network.interfaces_file);
    await expect(applier().configure([NEW], 0, false)).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
    });
    expect((await applier().get()).backend).toBeUndefined();
  });
});
