// TLS of deploy/ (issue 15, item 11): deploy/tls/make-certs.sh makes a private CA and the
// certificates of a first install; deploy/nats's server config, rendered on loopback with them,
// takes only TLS clients; a real node daemon given the deployment's CA (NATS_TLS_CA) connects
// and relays a guest ping to a real agent; client certificates when the server asks for them;
// and the control plane's PostgreSQL connections with DATABASE_SSL_MODE=verify-full.
// (The routes of deploy/nats/cluster use TLS too: test/deploy/nats-cluster.spec.ts.)
import { signedRequestGuest } from '../support/signing.js';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fromBinary } from '@bufbuild/protobuf';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AgentState, NodeHeartbeatSchema, subjects } from '@lq/proto';
import pg from 'pg';
import {
  CONTROL_PLANE_PASSWORD_VAR,
  CONTROL_PLANE_USER,
  nodePasswordVar,
  nodeUser,
  renderAuthConf,
  renderServerConf,
  tlsFilesIn,
} from '../../deploy/nats/render-nats-conf.mjs';
import { startControlPlaneProcess } from '../support/control-plane-process.js';
import { freePort, startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { REPO_ROOT } from '../support/service-process.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';

const MAKE_CERTS = join(REPO_ROOT, 'deploy/tls/make-certs.sh');
const PASSWORDS = { cp: 'cpTlsSecret0123', 'node-a': 'nodeATlsSecret0123' };

function makeCerts(out: string, ...args: string[]): string {
  return execFileSync('sh', [MAKE_CERTS, '--out', out, ...args], { encoding: 'utf8' });
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Runs a script of the repository with only the environment given; its exit code and output. */
function runNode(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [join(REPO_ROOT, script)], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    proc.once('exit', (code) => resolve({ code, output }));
  });
}

/**
 * A client that does not speak TLS: reads the server's INFO, sends CONNECT with valid
 * credentials and PING in the clear, and returns everything the server sent until it closed.
 */
function plainClient(port: number, user: string, pass: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let received = '';
    socket.on('data', (d: Buffer) => {
      const first = received === '';
      received += d.toString();
      if (first) {
        socket.write(`CONNECT ${JSON.stringify({ user, pass, verbose: true })}\r\nPING\r\n`);
      }
    });
    socket.once('close', () => resolve(received));
    socket.once('error', () => undefined);
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe('deploy/tls/make-certs.sh', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-certs-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should make a CA and a certificate per service that verify, with every key 0600', () => {
    makeCerts(dir, '--owners', '', '--nats-host', 'nats.example.com,192.0.2.10');
    for (const svc of ['nats', 'proxy', 'postgres']) {
      const crt = join(dir, svc, 'tls.crt');
      expect(
        execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca/ca.crt'), crt], {
          encoding: 'utf8',
        }),
      ).toMatch(/: OK/);
      expect([svc, statSync(join(dir, svc, 'tls.key')).mode & 0o777]).toEqual([svc, 0o600]);
      expect(sha(join(dir, svc, 'ca.crt'))).toBe(sha(join(dir, 'ca/ca.crt')));
    }
    expect(statSync(join(dir, 'ca/ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'ca')).mode & 0o777).toBe(0o700);
    const names = execFileSync(
      'openssl',
      ['x509', '-in', join(dir, 'nats/tls.crt'), '-noout', '-ext', 'subjectAltName'],
      { encoding: 'utf8' },
    );
    for (const name of [
      'DNS:nats-1',
      'DNS:nats-3',
      'DNS:nats.example.com',
      'IP Address:192.0.2.10',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('should change nothing when run again with the same names', () => {
    const files = ['ca/ca.crt', 'ca/ca.key', 'nats/tls.crt', 'nats/tls.key', 'proxy/tls.key'];
    const before = files.map((f) => sha(join(dir, f)));
    const out = makeCerts(dir, '--owners', '', '--nats-host', 'nats.example.com,192.0.2.10');
    expect(out).not.toMatch(/issued|created|renewing/);
    expect(files.map((f) => sha(join(dir, f)))).toEqual(before);
  });

  it('should issue again a certificate whose names changed, and leave one it did not sign alone', () => {
    const other = join(dir, 'other');
    makeCerts(other, '--owners', '');
    // The operator's own proxy certificate (another CA's), put where the compose file mounts it.
    execFileSync('cp', [
      join(other, 'proxy/tls.crt'),
      join(other, 'proxy/tls.key'),
      join(dir, 'proxy'),
    ]);
    const proxy = sha(join(dir, 'proxy/tls.crt'));
    const nats = sha(join(dir, 'nats/tls.crt'));
    const out = makeCerts(dir, '--owners', '');
    expect(out).toMatch(/renewing nats\/tls.crt/);
    expect(out).toMatch(/kept {5}proxy\/tls.crt \(not signed by ca\/ca.crt/);
    expect(sha(join(dir, 'nats/tls.crt'))).not.toBe(nats);
    expect(sha(join(dir, 'proxy/tls.crt'))).toBe(proxy);
  });

  it('should refuse a host name that is not one, naming it', () => {
    expect(() =>
      execFileSync('sh', [MAKE_CERTS, '--out', dir, '--proxy-host', 'bad name;rm'], {
        encoding: 'utf8',
        stdio: 'pipe',
      }),
    ).toThrow(/'bad name;rm' is not a host name or IP address/);
  });
});

describe("deploy/nats's server config with TLS on loopback (real nats-server, node daemon, agent)", () => {
  let work: string;
  let tls: string;
  let nats: RunningNats;
  let monitorPort: number;
  let sims: SimVms;
  let cp: NatsConnection | undefined;
  const daemons: RunningNodeDaemon[] = [];
  const serverEnv = {
    [CONTROL_PLANE_PASSWORD_VAR]: `"${PASSWORDS.cp}"`,
    [nodePasswordVar('node-a')]: `"${PASSWORDS['node-a']}"`,
  };
  const daemonEnv = (extra: Record<string, string> = {}) => ({
    NATS_USER: nodeUser('node-a'),
    NATS_PASSWORD: PASSWORDS['node-a'],
    ...extra,
  });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-tls-'));
    tls = join(work, 'tls');
    makeCerts(tls, '--owners', '', '--client', nodeUser('node-a'));
    makeCerts(join(work, 'other'), '--owners', '');
    monitorPort = await freePort();
    [nats, sims] = await Promise.all([
      startNatsServer({
        // What deploy/nats/nats-server.conf is, with the certificates' paths of this machine.
        config: renderServerConf({ tls: tlsFilesIn(join(tls, 'nats')) }),
        files: { 'auth.conf': renderAuthConf(['node-a']) },
        env: serverEnv,
        args: ['-m', String(monitorPort)],
      }),
      startSimVms({ dir: join(work, 'channels'), count: 1, prefix: 'tls-vm-' }),
    ]);
  });

  afterAll(async () => {
    await cp?.close();
    await Promise.all(daemons.map((d) => d.stop()));
    await sims?.stop();
    await nats?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should refuse a client that does not speak TLS, even with a valid user and password', async () => {
    const before = nats.output().length;
    const received = await plainClient(nats.port, nodeUser('node-a'), PASSWORDS['node-a']);
    const info = JSON.parse(/^INFO (\{.*\}) *\r\n/.exec(received)?.[1] ?? '{}') as {
      tls_required?: boolean;
    };
    expect(info.tls_required).toBe(true);
    // No +OK for the CONNECT and no PONG: the server closed the connection instead.
    expect(received.split('\r\n').filter((l) => l && !l.startsWith('INFO '))).toEqual([]);
    expect(nats.output().slice(before)).toMatch(/TLS handshake error/);
  });

  it('should refuse a TLS client that does not trust the deployment CA', async () => {
    await expect(
      connect({
        servers: nats.url,
        user: nodeUser('node-a'),
        pass: PASSWORDS['node-a'],
        reconnect: false,
      }),
    ).rejects.toThrow(/certificate/i);
  });

  it('should let a node daemon given the deployment CA connect over TLS and relay a guest ping', async () => {
    cp = await connect({
      servers: nats.url,
      user: CONTROL_PLANE_USER,
      pass: PASSWORDS.cp,
      tls: { caFile: join(tls, 'ca/ca.crt') },
    });
    let ready = false;
    const sub = cp.subscribe(subjects.heartbeat('node-a'), {
      callback: (err, msg) => {
        const hb = err ? undefined : fromBinary(NodeHeartbeatSchema, msg.data);
        ready ||=
          hb?.vms.some((v) => v.vmId === 'tls-vm-1' && v.state === AgentState.READY) ?? false;
      },
    });
    await cp.flush();
    daemons.push(
      await startNodeDaemon({
        nodeId: 'node-a',
        natsUrl: nats.url,
        channelDirs: [sims.dir],
        env: daemonEnv({ NATS_TLS_CA: join(tls, 'ca/ca.crt') }),
      }),
    );
    for (const deadline = Date.now() + 15_000; !ready; await sleep(50)) {
      if (Date.now() > deadline) {
        throw new Error('no heartbeat with tls-vm-1 ready');
      }
    }
    sub.unsubscribe();
    const reply = await signedRequestGuest(cp, 'node-a', 'ping', {
      vmId: 'tls-vm-1',
      timeoutMs: 5000,
      operation: { case: 'ping', value: {} },
    });
    expect(reply.result.case).toBe('pong');
    expect(reply.nodeId).toBe('node-a');
    const connz = (await (
      await fetch(`http://127.0.0.1:${monitorPort}/connz?auth=true`)
    ).json()) as { connections: Array<{ authorized_user?: string; tls_version?: string }> };
    const daemonConn = connz.connections.find((c) => c.authorized_user === nodeUser('node-a'));
    expect(daemonConn?.tls_version).toMatch(/^1\.[23]$/);
    await daemons.pop()!.stop();
  });

  it('should stop a node daemon given another CA, or an unreadable NATS_TLS_CA, naming why', async () => {
    await expect(
      startNodeDaemon({
        nodeId: 'node-a',
        natsUrl: nats.url,
        channelDirs: [sims.dir],
        env: daemonEnv({ NATS_TLS_CA: join(work, 'other/ca/ca.crt') }),
      }),
    ).rejects.toThrow(/certificate/i);
    const missing = join(work, 'nowhere/ca.crt');
    await expect(
      startNodeDaemon({
        nodeId: 'node-a',
        natsUrl: nats.url,
        channelDirs: [sims.dir],
        env: daemonEnv({ NATS_TLS_CA: missing }),
      }),
    ).rejects.toThrow(
      new RegExp(`exited 2:[\\s\\S]*NATS_TLS_CA: cannot read ${missing} \\(ENOENT\\)`),
    );
  });

  describe('with client certificates required (render-nats-conf.mjs --verify-clients)', () => {
    let strict: RunningNats;

    beforeAll(async () => {
      strict = await startNatsServer({
        config: renderServerConf({
          tls: { ...tlsFilesIn(join(tls, 'nats')), verifyClients: true },
        }),
        files: { 'auth.conf': renderAuthConf(['node-a']) },
        env: serverEnv,
      });
    });

    afterAll(async () => {
      await strict?.stop();
    });

    it('should refuse a client without a client certificate and take a node daemon with the CA’s', async () => {
      const ca = { NATS_TLS_CA: join(tls, 'ca/ca.crt') };
      const before = strict.output().length;
      // nats.js notices only by its connection timeout (the server's alert comes after the
      // TLS 1.3 handshake); a short one keeps this quick, the refusal is the server's.
      await expect(
        connect({
          servers: strict.url,
          user: nodeUser('node-a'),
          pass: PASSWORDS['node-a'],
          tls: { caFile: ca.NATS_TLS_CA },
          reconnect: false,
          timeout: 3000,
        }),
      ).rejects.toThrow();
      expect(strict.output().slice(before)).toMatch(/client didn't provide a certificate/);
      const client = join(tls, 'clients', nodeUser('node-a'));
      const daemon = await startNodeDaemon({
        nodeId: 'node-a',
        natsUrl: strict.url,
        channelDirs: [sims.dir],
        env: daemonEnv({
          ...ca,
          NATS_TLS_CERT: join(client, 'tls.crt'),
          NATS_TLS_KEY: join(client, 'tls.key'),
        }),
      });
      daemons.push(daemon);
      expect(daemon.output()).toMatch(/connected to NATS/);
      await daemons.pop()!.stop();
    });
  });
});

describe('the control plane’s PostgreSQL connections with DATABASE_SSL_MODE=verify-full', () => {
  let work: string;
  let cluster: PgCluster;
  let nats: RunningNats;
  let url: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-pg-tls-'));
    // PostgreSQL runs as the postgres user (we are root here): it must reach its certificate,
    // and its key must be its own, 0600.
    chmodSync(work, 0o711);
    const uid =
      process.getuid?.() === 0
        ? execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()
        : undefined;
    makeCerts(join(work, 'tls'), '--owners', uid ? `postgres=${uid}` : '');
    makeCerts(join(work, 'other'), '--owners', '');
    const pgTls = join(work, 'tls/postgres');
    [cluster, nats] = await Promise.all([
      startPgCluster({
        settings: {
          ssl: 'on',
          ssl_cert_file: join(pgTls, 'tls.crt'),
          ssl_key_file: join(pgTls, 'tls.key'),
        },
      }),
      startNatsServer(),
    ]);
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    await admin.query('CREATE DATABASE lq_tls');
    await admin.end();
    url = cluster.url('lq_tls');
  });

  afterAll(async () => {
    await nats?.stop();
    cluster?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  const sslEnv = (ca: string) => ({
    DATABASE_URL: url,
    DATABASE_SSL_MODE: 'verify-full',
    DATABASE_SSL_CA: ca,
  });

  it('should run the migrations and the control plane over TLS verified against the CA', async () => {
    const migrate = await runNode(
      'dist/tsc/apps/control-plane/src/database/migrate.js',
      sslEnv(join(work, 'tls/ca/ca.crt')),
    );
    expect(migrate).toEqual({ code: 0, output: expect.stringMatching(/applied migrations: /) });
    const controlPlane = await startControlPlaneProcess({
      databaseUrl: url,
      natsUrl: nats.url,
      env: { ...sslEnv(join(work, 'tls/ca/ca.crt')), LQ_RUN_MIGRATIONS: 'false' },
    });
    try {
      expect((await fetch(`${controlPlane.url}/health`)).status).toBe(200);
      const admin = new pg.Client({ connectionString: cluster.url() });
      await admin.connect();
      try {
        const { rows } = await admin.query<{ ssl: boolean }>(
          `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
            WHERE a.datname = 'lq_tls' AND a.backend_type = 'client backend'`,
        );
        expect(rows.length).toBeGreaterThan(0);
        expect(rows.every((r) => r.ssl)).toBe(true);
      } finally {
        await admin.end();
      }
    } finally {
      await controlPlane.stop();
    }
  });

  it('should refuse a server whose certificate does not chain to DATABASE_SSL_CA', async () => {
    const migrate = await runNode(
      'dist/tsc/apps/control-plane/src/database/migrate.js',
      sslEnv(join(work, 'other/ca/ca.crt')),
    );
    expect(migrate.code).toBe(1);
    expect(migrate.output).toMatch(/migrate: .*certificate/i);
  });
});
