// The deployment files of deploy/ (issue 6), checked for what they promise: the compose
// topology and its hardening, the images' stages and users, the systemd units and their
// environment files, and the configuration reference of deploy/README.md, against the
// services' own lists of variables. docker compose and systemd-analyze validate too when they
// are installed; the structural checks below run everywhere.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { BlockList, isIPv4 } from 'node:net';
import {
  CONTROL_PLANE_ENV,
  parseControlPlaneEnv,
} from '../../apps/control-plane/src/config/env.schema.js';
import { ENV_VARIABLES } from '../../apps/node-daemon/src/config/env.schema.js';
import {
  COMPOSE_SERVERS,
  renderClusterServerConf,
} from '../../deploy/nats/cluster/render-cluster-conf.mjs';
import { DEPLOY_TLS, renderTlsBlock } from '../../deploy/nats/render-nats-conf.mjs';
import { rowCells, tableBlock } from '../../deploy/render-config-reference.mjs';
import { REPO_ROOT } from '../support/service-process.js';

const DEPLOY = join(REPO_ROOT, 'deploy');
const read = (path: string) => readFileSync(join(DEPLOY, path), 'utf8');

// js-yaml comes with jest (@istanbuljs/load-nyc-config) and @nestjs/swagger; 3.x and 4.x both
// have load(), 3.x also safeLoad().
const yaml = createRequire(import.meta.url)('js-yaml') as {
  load(text: string): unknown;
  safeLoad?: (text: string) => unknown;
};

interface Healthcheck {
  test?: string[];
  disable?: boolean;
}
interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  user?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: Healthcheck;
  depends_on?: Record<string, { condition: string }>;
  cap_drop?: string[];
  security_opt?: string[];
  read_only?: boolean;
  restart?: string;
  group_add?: string[];
  networks?: string[] | Record<string, { ipv4_address?: string } | null>;
}
interface Compose {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<
    string,
    { internal?: boolean; ipam?: { config?: Array<{ subnet?: string }> } } | null
  >;
}

const composeText = read('docker-compose.yml');
const compose = (yaml.safeLoad ?? yaml.load)(composeText) as Compose;
const services = compose.services;
const ONE_SHOT = 'migrate';
const REPLICAS = ['control-plane-1', 'control-plane-2'];

/** The secrets the compose file takes from deploy/.env; none may have a default. */
const SECRETS = [
  'POSTGRES_PASSWORD',
  'LQ_DB_OWNER_PASSWORD',
  'LQ_DB_APP_PASSWORD',
  'LQ_ADMIN_TOKEN',
  'LQ_JWT_SECRET',
  'LQ_NATS_CLUSTER_PASSWORD',
  'LQ_NATS_PASSWORD_CONTROL_PLANE',
  'LQ_NATS_PASSWORD_NODE_NODE_1',
  'LQ_NATS_PASSWORD_NODE_NODE_2',
  'LQ_NATS_PASSWORD_NODE_NODE_3',
];
/** Required, not secret (the QEMU group, the control plane's public signing keys). */
const REQUIRED = [...SECRETS, 'LQ_QEMU_GID', 'LQ_CONTROL_PLANE_KEYS'];
const DUMMY_ENV = Object.fromEntries(
  REQUIRED.map((name) => [name, name === 'LQ_QEMU_GID' ? '993' : `dummy${name.length}x0123456789`]),
);

/** Every string of a parsed YAML document (values and keys alike), comments left out. */
function strings(node: unknown): string[] {
  if (typeof node === 'string') {
    return [node];
  }
  if (Array.isArray(node)) {
    return node.flatMap(strings);
  }
  if (node && typeof node === 'object') {
    return Object.entries(node).flatMap(([k, v]) => [k, ...strings(v)]);
  }
  return [];
}

/** `${NAME}`, `${NAME:-default}`, `${NAME:?message}` references of the compose file. */
function interpolations(doc: unknown): Array<{ name: string; op: string }> {
  return [
    ...strings(doc)
      .join('\n')
      .matchAll(/\$\{([A-Z0-9_]+)(?:(:?[-?])[^}]*)?\}/g),
  ].map((m) => ({
    name: m[1]!,
    op: m[2] ?? '',
  }));
}

/** The variable names of a schema list ('A / B' rows hold two). */
const names = (rows: Array<[string, string, string]>) => rows.flatMap(([n]) => n.split(' / '));

/** `docker compose` (v2) or `docker-compose` (v1), whichever answers `version`. */
function composeCli(): string[] | undefined {
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), 'version'], { encoding: 'utf8' });
    if (r.status === 0) {
      return cmd;
    }
  }
  return undefined;
}
const COMPOSE_CLI = composeCli();
const SYSTEMD_ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('deploy/docker-compose.yml', () => {
  it('should cluster three NATS servers whose rendered configs include the shared auth.conf', () => {
    const authVars = [...read('nats/auth.conf').matchAll(/^\s*password: \$([A-Z0-9_]+)$/gm)].map(
      (m) => m[1]!,
    );
    for (const [i, name] of COMPOSE_SERVERS.entries()) {
      const s = services[name]!;
      expect(s.image).toMatch(/^nats:2(-alpine)?$/);
      expect(s.command).toEqual(['nats-server', '--config', `/etc/nats/cluster/${name}.conf`]);
      expect(s.volumes).toEqual(['./nats:/etc/nats:ro', './tls/nats:/etc/nats-tls:ro']);
      expect(s.ports).toEqual([`\${LQ_NATS_PUBLISH_ADDR:-127.0.0.1}:${4222 + i}:4222`]);
      // The checked-in config is the renderer's output, and includes ../auth.conf.
      const conf = read(`nats/cluster/${name}.conf`);
      expect(conf).toBe(renderClusterServerConf({ serverName: name }));
      expect(conf).toMatch(/^include \.\.\/auth\.conf$/m);
      // TLS on the client port and on the routes (each server checks the others' certificate),
      // with the files mounted from deploy/tls/nats.
      expect(conf).toContain(`\n${renderTlsBlock(DEPLOY_TLS)}\n`);
      expect(conf).toContain(`\n${renderTlsBlock(DEPLOY_TLS, { indent: '  ', verify: true })}\n`);
      expect(DEPLOY_TLS.certFile.startsWith('/etc/nats-tls/')).toBe(true);
      // Every $VARIABLE of both files is in the server's environment.
      const confVars = [...conf.matchAll(/^\s*\w+: \$([A-Z0-9_]+)$/gm)].map((m) => m[1]!);
      expect(Object.keys(s.environment ?? {}).sort()).toEqual([...authVars, ...confVars].sort());
      // Routes to all three (a server drops the one to itself), each with the cluster password.
      const routes = JSON.parse(
        s.environment!.LQ_NATS_ROUTES!.replace(/\$\{[^}]+\}/g, 'PW'),
      ) as string[];
      expect(routes).toEqual(COMPOSE_SERVERS.map((n) => `nats://lq-route:PW@${n}:6222`));
    }
    expect(services['nats-1']!.environment!.LQ_NATS_ROUTES).toMatch(
      /^\[("nats:\/\/lq-route:\$\{LQ_NATS_CLUSTER_PASSWORD:\?[^}]+\}@nats-\d:6222"(, )?){3}\]$/,
    );
  });

  it('should run PostgreSQL 16 with a pg_isready health check and its data in a named volume', () => {
    const pg = services.postgres!;
    expect(pg.image).toBe('postgres:16');
    expect(pg.healthcheck?.test?.slice(0, 2)).toEqual(['CMD', 'pg_isready']);
    expect(pg.healthcheck?.test).toEqual(expect.arrayContaining(['-h', '127.0.0.1']));
    const data = pg.volumes?.find((v) => v.endsWith(':/var/lib/postgresql/data'));
    expect(data).toBe('pgdata:/var/lib/postgresql/data');
    expect(compose.volumes).toHaveProperty('pgdata');
    expect(pg.user).toBe('postgres');
  });

  it('should run the migrations once, to completion, before the replicas start without migrating', () => {
    const m = services[ONE_SHOT]!;
    expect(m.restart).toBe('no');
    expect(m.image).toBe(services['control-plane-1']!.image);
    expect(m.command).toEqual(['node', 'dist/tsc/apps/control-plane/src/database/migrate.js']);
    expect(existsSync(join(REPO_ROOT, 'apps/control-plane/src/database/migrate.ts'))).toBe(true);
    expect(m.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    for (const name of REPLICAS) {
      expect(services[name]!.depends_on?.[ONE_SHOT]).toEqual({
        condition: 'service_completed_successfully',
      });
      expect(services[name]!.environment?.LQ_RUN_MIGRATIONS).toBe('false');
    }
  });

  // Issue 18 item 4: the replicas may not change what they audit.
  it('should migrate as the owner role and run the replicas as the append-only role', () => {
    const m = services[ONE_SHOT]!.environment!;
    expect(m.DATABASE_MIGRATION_URL).toMatch(/^postgres:\/\/lq_owner:\$\{LQ_DB_OWNER_PASSWORD:\?/);
    expect(m.DATABASE_URL).toMatch(/^postgres:\/\/lq_app:\$\{LQ_DB_APP_PASSWORD:\?/);
    for (const name of REPLICAS) {
      const env = services[name]!.environment!;
      expect(env.DATABASE_URL).toBe(m.DATABASE_URL);
      expect(env.DATABASE_MIGRATION_URL).toBeUndefined();
      expect(env.LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE).toBe('true');
    }
    const pg = services.postgres!;
    expect(pg.volumes).toContain(
      './postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-init-roles.sh:ro',
    );
    const script = read('postgres/init-roles.sh');
    expect(script).toMatch(/CREATE ROLE lq_owner LOGIN NOSUPERUSER/);
    expect(script).toMatch(/CREATE ROLE lq_app LOGIN NOSUPERUSER/);
  });

  it('should put two control-plane replicas behind the proxy for HTTP and for gRPC', () => {
    // The same but for their own audit spool volume.
    const [a, b] = REPLICAS.map((n) => ({
      ...services[n]!,
      volumes: services[n]!.volumes?.filter(
        (v) => !v.endsWith(':/var/lib/limiquantix/audit-spool'),
      ),
    }));
    expect(a).toEqual(b);
    expect(a!.build?.dockerfile).toBe('deploy/docker/control-plane.Dockerfile');
    expect(a!.environment?.NATS_URL).toBe(COMPOSE_SERVERS.map((n) => `nats://${n}:4222`).join(','));
    expect(a!.environment?.NATS_USER).toBe('lq-control-plane');
    const proxy = services.proxy!;
    expect(proxy.depends_on).toEqual(
      Object.fromEntries(REPLICAS.map((n) => [n, { condition: 'service_healthy' }])),
    );
    expect(proxy.ports?.map((p) => p.split(':').slice(-2).join(':'))).toEqual([
      '8443:8443',
      '9443:9443',
    ]);
    expect(proxy.volumes).toEqual([
      './proxy/nginx.conf:/etc/nginx/nginx.conf:ro',
      './tls/proxy:/etc/nginx/tls:ro',
    ]);
    const nginx = read('proxy/nginx.conf');
    const upstream = (name: string) =>
      [
        ...(new RegExp(`upstream ${name} \\{([^}]*)\\}`).exec(nginx)?.[1] ?? '').matchAll(
          /server (\S+)/g,
        ),
      ].map((m) => m[1]);
    expect(upstream('control_plane_http')).toEqual(REPLICAS.map((n) => `${n}:8080`));
    expect(upstream('control_plane_grpc')).toEqual(REPLICAS.map((n) => `${n}:9090`));
    expect(nginx).toMatch(/grpc_pass grpc:\/\/control_plane_grpc;/);
    expect(nginx).toMatch(/proxy_pass http:\/\/control_plane_http;/);
  });

  it('should terminate TLS at the proxy: every published listener speaks TLS, the plain one is the health check’s', () => {
    const nginx = read('proxy/nginx.conf')
      .split('\n')
      .filter((l) => !l.trim().startsWith('#'))
      .join('\n');
    const listens = [...nginx.matchAll(/^\s*listen ([^;]+);/gm)].map((m) => m[1]);
    expect(listens).toEqual(['8443 ssl', '9443 ssl', '127.0.0.1:8080']);
    expect(nginx).toMatch(/listen 9443 ssl;\s+http2 on;/);
    expect(nginx).toMatch(/^\s*ssl_certificate \/etc\/nginx\/tls\/tls\.crt;$/m);
    expect(nginx).toMatch(/^\s*ssl_certificate_key \/etc\/nginx\/tls\/tls\.key;$/m);
    expect(nginx).toMatch(/^\s*ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
    // The loopback listener serves /health and nothing else.
    const plain = /listen 127\.0\.0\.1:8080;([\s\S]*?)\n {2}\}/.exec(nginx)?.[1] ?? '';
    expect([...plain.matchAll(/location (.+?) \{/g)].map((m) => m[1])).toEqual(['= /health', '/']);
    expect(plain).toMatch(/location \/ \{\s+return 404;/);
    expect(services.proxy!.healthcheck?.test).toEqual([
      'CMD',
      'wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:8080/health',
    ]);
  });

  it('should connect the replicas, the migrations and the node daemon to NATS and PostgreSQL over verified TLS', () => {
    const ca = '/etc/lq-tls/ca.crt';
    for (const name of [...REPLICAS, ONE_SHOT, 'node-daemon']) {
      const s = services[name]!;
      expect([name, s.volumes]).toEqual([
        name,
        expect.arrayContaining([`./tls/ca/ca.crt:${ca}:ro`]),
      ]);
      if (name !== 'node-daemon') {
        expect([name, s.environment]).toEqual([
          name,
          expect.objectContaining({ DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA: ca }),
        ]);
      }
      if (name !== ONE_SHOT) {
        expect([name, s.environment?.NATS_TLS_CA]).toEqual([name, ca]);
      }
    }
    const pg = services.postgres!;
    expect(pg.command).toEqual([
      'postgres',
      '-c',
      'ssl=on',
      '-c',
      'ssl_cert_file=/etc/postgres-tls/tls.crt',
      '-c',
      'ssl_key_file=/etc/postgres-tls/tls.key',
    ]);
    expect(pg.volumes).toContain('./tls/postgres:/etc/postgres-tls:ro');
    // make-certs.sh hands each key to the user its container runs as.
    const script = read('tls/make-certs.sh');
    expect(script).toContain('OWNERS=nats=65534,proxy=101,postgres=999');
    expect(services['nats-1']!.user).toBe('65534:65534');
    expect(services.proxy!.user).toBe('101:101');
  });

  // Issue 15, item 10: `uniquelocal` trusted X-Forwarded-For from any private address, and the
  // node daemon shares a network with the replicas: it could forge the audit trail's source.
  it('should trust X-Forwarded-For from the proxy’s own fixed address only', () => {
    const proxyNets = services.proxy!.networks as Record<string, { ipv4_address?: string } | null>;
    const proxyAddr = proxyNets.app?.ipv4_address ?? '';
    const subnet = compose.networks?.app?.ipam?.config?.[0]?.subnet ?? '';
    const dflt = (v: string) => /^\$\{[A-Z_]+:-([^}]+)\}$/.exec(v)?.[1] ?? v;
    expect(isIPv4(dflt(proxyAddr))).toBe(true);
    const [net, bits] = dflt(subnet).split('/');
    const inSubnet = new BlockList();
    inSubnet.addSubnet(net!, Number(bits));
    expect(inSubnet.check(dflt(proxyAddr))).toBe(true);
    for (const name of REPLICAS) {
      const trust = services[name]!.environment!.LQ_TRUST_PROXY!;
      // The very same setting (the same variable and default), one address: no keyword, no range.
      expect(trust).toBe(proxyAddr);
      expect(
        parseControlPlaneEnv({ DATABASE_URL: 'postgres://x@y/z', LQ_TRUST_PROXY: dflt(trust) })
          .trustProxy,
      ).toBe(dflt(proxyAddr));
    }
    // The replicas meet the proxy on `app` only, where its address is the fixed one.
    expect(Object.keys(proxyNets)).toEqual(['edge', 'app']);
  });

  it('should mount the host’s channel sockets into the node daemon and give it its own NATS user', () => {
    const d = services['node-daemon']!;
    expect(d.build?.dockerfile).toBe('deploy/docker/node-daemon.Dockerfile');
    const dir = '/var/lib/libvirt/qemu/channel/target';
    expect(d.volumes).toEqual([
      `\${LQ_HOST_CHANNEL_DIR:-${dir}}:${dir}:ro`,
      './tls/ca/ca.crt:/etc/lq-tls/ca.crt:ro',
    ]);
    expect(d.environment).toMatchObject({
      LQ_NODE_ID: 'node-1',
      LQ_CHANNEL_DIRS: dir,
      NATS_USER: 'lq-node-node-1',
      NATS_URL: services['control-plane-1']!.environment!.NATS_URL,
    });
    expect(d.group_add).toEqual([expect.stringMatching(/^\$\{LQ_QEMU_GID:\?/)]);
  });

  it('should give every long-running service a health check, and the one-shot its exit code', () => {
    for (const [name, s] of Object.entries(services)) {
      if (name === ONE_SHOT) {
        expect(s.healthcheck).toEqual({ disable: true });
      } else {
        expect([name, s.healthcheck?.test?.[0]]).toEqual([name, 'CMD']);
        expect(s.healthcheck?.test?.length).toBeGreaterThan(1);
      }
    }
  });

  it('should keep each replica’s audit spool in a volume of its own, not in its tmpfs', () => {
    const volumes = REPLICAS.map((name) => {
      const s = services[name]!;
      const dir = s.environment!.LQ_AUDIT_SPOOL_DIR!;
      expect(dir).toMatch(/^\/var\/lib\//);
      const mount = s.volumes?.find((v) => v.endsWith(`:${dir}`));
      expect([name, mount]).toEqual([name, expect.stringMatching(/^[a-z0-9-]+:/)]);
      // The signing key and CA are mounted as well (a service's list replaces the anchor's).
      expect(s.volumes).toEqual(
        expect.arrayContaining(['./keys/signing.key:/etc/lq-keys/signing.key:ro']),
      );
      return mount!.split(':')[0]!;
    });
    expect(new Set(volumes).size).toBe(REPLICAS.length);
    for (const v of volumes) {
      expect(compose.volumes).toHaveProperty(v);
    }
    // The image creates the directory for its user, so a new volume takes that owner.
    expect(read('docker/control-plane.Dockerfile')).toMatch(
      /mkdir -p \/var\/lib\/limiquantix\/audit-spool && chown node:node/,
    );
  });

  it('should drop every capability, forbid new privileges and run read-only as a non-root user', () => {
    for (const [name, s] of Object.entries(services)) {
      expect([name, s.cap_drop, s.security_opt, s.read_only]).toEqual([
        name,
        ['ALL'],
        ['no-new-privileges:true'],
        true,
      ]);
      // Set here, or the image's USER (our Dockerfiles': node).
      if (s.build) {
        expect(s.user).toBeUndefined();
      } else {
        expect([name, s.user]).toEqual([name, expect.stringMatching(/^(?!root|0(:|$))\S+/)]);
      }
    }
  });

  it('should start each service only after what it depends on is healthy (or done, for the migrations)', () => {
    const edges = Object.entries(services).flatMap(([name, s]) =>
      Object.entries(s.depends_on ?? {}).map(([dep, c]) => ({ name, dep, ...c })),
    );
    expect(edges.length).toBeGreaterThan(10);
    for (const e of edges) {
      expect(services[e.dep]).toBeDefined();
      expect(e).toEqual({
        ...e,
        condition: e.dep === ONE_SHOT ? 'service_completed_successfully' : 'service_healthy',
      });
    }
    for (const name of ['node-daemon', ...REPLICAS]) {
      expect(Object.keys(services[name]!.depends_on!)).toEqual(
        expect.arrayContaining(COMPOSE_SERVERS),
      );
    }
    // Only the proxy and NATS are reachable from outside; the database network is internal.
    expect(compose.networks?.db).toEqual({ internal: true });
    expect(compose.networks?.app).toMatchObject({ internal: true });
    expect(Object.keys(services).filter((n) => services[n]!.ports)).toEqual([
      ...COMPOSE_SERVERS,
      'proxy',
    ]);
  });

  it('should take every secret from the environment, required and without a default', () => {
    const refs = interpolations(compose);
    for (const secret of SECRETS) {
      const uses = refs.filter((r) => r.name === secret);
      expect([secret, uses.length > 0]).toEqual([secret, true]);
      expect([secret, uses.filter((u) => u.op !== ':?')]).toEqual([secret, []]);
    }
    // Nothing that looks like a secret escapes the list, nor sits in the file as a literal.
    const secretish = refs.filter((r) => /PASSWORD|TOKEN|SECRET/.test(r.name));
    expect(secretish.filter((r) => !SECRETS.includes(r.name))).toEqual([]);
    for (const s of Object.values(services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (/PASSWORD|TOKEN|SECRET|DATABASE_URL|ROUTES/.test(key)) {
          expect([key, value]).toEqual([key, expect.stringMatching(/\$\{[A-Z0-9_]+:\?/)]);
        }
      }
    }
    // deploy/.env.example names every variable the file reads, secrets empty.
    const example = read('.env.example');
    for (const { name } of refs) {
      expect([name, example]).toEqual([
        name,
        expect.stringMatching(new RegExp(`^#? ?${name}=`, 'm')),
      ]);
    }
    for (const name of REQUIRED) {
      expect(example).toMatch(new RegExp(`^${name}=$`, 'm'));
    }
  });

  it('should list every variable the compose file requires (the dummy environment sets them)', () => {
    // Comments left out: they explain the `${VAR:?}` form.
    const uncommented = composeText.replace(/^\s*#.*$/gm, '');
    const required = new Set([...uncommented.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]!));
    expect([...required].sort()).toEqual([...REQUIRED].sort());
  });

  (COMPOSE_CLI ? it : it.skip)(
    `should pass ${COMPOSE_CLI?.join(' ') ?? 'docker compose'} config, and fail naming a secret that is missing`,
    () => {
      const cli = COMPOSE_CLI!;
      const dir = mkdtempSync(join(tmpdir(), 'lq-compose-'));
      try {
        // docker-compose v1 predates the top-level `name`; v2 reads the file as it is. Paths
        // resolve against deploy/ either way; an empty env file keeps a local deploy/.env out.
        let file = join(DEPLOY, 'docker-compose.yml');
        if (cli.length === 1) {
          file = join(dir, 'docker-compose.yml');
          writeFileSync(file, composeText.replace(/^name: .*\n/m, ''));
        }
        const envFile = join(dir, 'empty.env');
        writeFileSync(envFile, '');
        const run = (env: Record<string, string>) =>
          spawnSync(
            cli[0]!,
            [
              ...cli.slice(1),
              '-f',
              file,
              '--project-directory',
              DEPLOY,
              '--env-file',
              envFile,
              'config',
            ],
            { encoding: 'utf8', cwd: dir, env: { PATH: process.env.PATH, HOME: dir, ...env } },
          );
        const ok = run(DUMMY_ENV);
        expect([ok.status, ok.status === 0 ? '' : ok.stderr]).toEqual([0, '']);
        expect(ok.stdout).toContain('service_completed_successfully');
        expect(ok.stdout).not.toContain('${');
        const missing: Record<string, string> = { ...DUMMY_ENV };
        delete missing.LQ_JWT_SECRET;
        const bad = run(missing);
        expect(bad.status).not.toBe(0);
        expect(bad.stderr).toMatch(/LQ_JWT_SECRET/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

interface Stage {
  from: string;
  name: string;
  lines: string[];
}

/** FROM … AS … stages of a Dockerfile, with their instructions (continuations joined). */
function stages(text: string): Stage[] {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const result: Stage[] = [];
  for (const line of instructions) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      result.push({ from: from[1]!, name: from[2] ?? '', lines: [] });
    } else if (result.length > 0) {
      result.at(-1)!.lines.push(line);
    }
  }
  return result;
}

describe.each([
  ['control-plane', 'apps/control-plane/src/main.ts', ['8080', '9090']],
  ['node-daemon', 'apps/node-daemon/src/main.ts', []],
])('deploy/docker/%s.Dockerfile', (name, main, ports) => {
  const text = read(`docker/${name}.Dockerfile`);
  const all = stages(text);
  const final = all.at(-1)!;
  const args = Object.fromEntries(
    [...text.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [`\${${m[1]}}`, m[2]!]),
  );
  const image = (s: Stage) => s.from.replace(/\$\{\w+\}/g, (v) => args[v] ?? v);

  it('should build with node:20 in a build stage and run from a slim final stage', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.every((s) => s.name)).toBe(true);
    const build = all.find((s) => s.lines.some((l) => l === 'RUN node scripts/build-tsc.mjs'));
    expect(build && image(build)).toMatch(/^node:20(-bookworm)?$/);
    expect(build?.lines).toContainEqual(expect.stringMatching(/^RUN npm ci\b/));
    expect(image(final)).toMatch(/^(node:20-[a-z]*-?slim|gcr\.io\/distroless\/nodejs20)/);
    expect(final.lines).toContain(
      `CMD ["node", "${main.replace(/^/, 'dist/tsc/').replace(/\.ts$/, '.js')}"]`,
    );
    expect(existsSync(join(REPO_ROOT, main))).toBe(true);
  });

  it('should run as a non-root user with a health check, and expose what it serves', () => {
    const user = final.lines.filter((l) => l.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)(:|$)/);
    expect(final.lines).toContainEqual(
      expect.stringMatching(/^HEALTHCHECK .*CMD \["node", "healthcheck\.mjs", "[a-z-]+"\]$/),
    );
    const exposed = final.lines
      .filter((l) => l.startsWith('EXPOSE '))
      .flatMap((l) => l.split(/\s+/).slice(1));
    expect(exposed).toEqual(ports);
  });

  it('should copy production dependencies only into the final stage', () => {
    const copies = final.lines.filter((l) => l.startsWith('COPY '));
    const modules = copies.filter((l) => /node_modules/.test(l));
    expect(modules).toHaveLength(1);
    const from = /--from=(\S+)/.exec(modules[0]!)?.[1];
    const deps = all.find((s) => s.name === from)!;
    expect(deps.lines).toContainEqual(expect.stringMatching(/^RUN npm ci .*--omit=dev/));
    expect(final.lines.filter((l) => /npm (ci|install)/.test(l) && !/--omit=dev/.test(l))).toEqual(
      [],
    );
    // No dev tree, sources or build cache: only built output (tsc, the web console) from the build.
    for (const c of copies.filter((l) => /--from=/.test(l) && l !== modules[0])) {
      expect(c).toMatch(/ \/src\/dist\/(tsc|console)\b/);
    }
  });

  it('should send the builder only what it copies (<Dockerfile>.dockerignore)', () => {
    const ignore = read(`docker/${name}.Dockerfile.dockerignore`)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = all
      .flatMap((s) => s.lines)
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const src of sources) {
      expect([src, allowed.some((a) => src === a || src.startsWith(`${a}/`))]).toEqual([src, true]);
    }
  });
});

describe('deploy/systemd', () => {
  const units = {
    'limiquantix-control-plane.service': {
      env: 'control-plane',
      main: 'dist/tsc/apps/control-plane/src/main.js',
      variables: names(CONTROL_PLANE_ENV),
    },
    'limiquantix-node-daemon.service': {
      env: 'node-daemon',
      main: 'dist/tsc/apps/node-daemon/src/main.js',
      variables: names(ENV_VARIABLES),
    },
    'limiquantix-migrate.service': {
      env: 'control-plane',
      main: 'dist/tsc/apps/control-plane/src/database/migrate.js',
      variables: names(CONTROL_PLANE_ENV),
    },
  };

  /** [section] → key → values (a key may repeat). */
  function sections(text: string): Record<string, Record<string, string[]>> {
    const out: Record<string, Record<string, string[]>> = {};
    let current: Record<string, string[]> | undefined;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      const section = /^\[(\w+)\]$/.exec(line);
      if (section) {
        current = out[section[1]!] = {};
      } else if (current && line && !line.startsWith('#')) {
        const [key, ...value] = line.split('=');
        (current[key!] ??= []).push(value.join('='));
      }
    }
    return out;
  }

  it.each(Object.entries(units))(
    'should run %s as its own user, restarted on failure, hardened',
    (unit, { env, main }) => {
      const s = sections(read(`systemd/${unit}`));
      const service = s.Service!;
      expect(service.User?.[0]).toMatch(/^limiquantix(-node)?$/);
      expect(service.EnvironmentFile).toEqual([`/etc/limiquantix/${env}.env`]);
      expect(service.ExecStart).toEqual([`/usr/bin/node /opt/limiquantix/${main}`]);
      expect(
        existsSync(join(REPO_ROOT, main.replace(/^dist\/tsc\//, '').replace(/\.js$/, '.ts'))),
      ).toBe(true);
      expect(service).toMatchObject({
        NoNewPrivileges: ['yes'],
        ProtectSystem: ['strict'],
        ProtectHome: ['yes'],
        PrivateTmp: ['yes'],
        CapabilityBoundingSet: [''],
        RestrictAddressFamilies: ['AF_INET AF_INET6 AF_UNIX'],
      });
      if (service.Type?.[0] === 'oneshot') {
        expect(service.Restart).toBeUndefined();
      } else {
        expect(service.Restart).toEqual(['on-failure']);
        expect(s.Install?.WantedBy).toEqual(['multi-user.target']);
      }
    },
  );

  it('should keep the control plane’s audit spool in its state directory, not its private /tmp', () => {
    const service = sections(read('systemd/limiquantix-control-plane.service')).Service!;
    expect(service.StateDirectory).toEqual(['limiquantix/audit-spool']);
    expect(service.Environment).toContain('LQ_AUDIT_SPOOL_DIR=/var/lib/limiquantix/audit-spool');
  });

  it('should let the node daemon reach the QEMU sockets through their group', () => {
    const service = sections(read('systemd/limiquantix-node-daemon.service')).Service!;
    expect(service.SupplementaryGroups).toEqual(['kvm']);
    expect(read('systemd/limiquantix.sysusers.conf')).toMatch(/^m\s+limiquantix-node\s+kvm$/m);
  });

  it.each(Object.entries(units).filter(([u]) => !u.includes('migrate')))(
    'should list in the example environment file of %s every variable the service reads, and no other',
    (_unit, { env, variables }) => {
      const text = read(`systemd/${env}.env.example`);
      const listed = [...text.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
      expect([...new Set(listed)].sort()).toEqual([...new Set(variables)].sort());
    },
  );

  (SYSTEMD_ANALYZE ? it : it.skip)(
    'should pass systemd-analyze verify without a warning, and score as well exposed as OK',
    () => {
      for (const unit of Object.keys(units)) {
        const path = join(DEPLOY, 'systemd', unit);
        const verify = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
        // verify exits 0 on unknown keys or bad values, but warns: warnings fail here.
        expect([unit, verify.status, verify.stdout + verify.stderr]).toEqual([unit, 0, '']);
        const security = spawnSync('systemd-analyze', ['security', '--offline=yes', path], {
          encoding: 'utf8',
        });
        const exposure = Number(
          /Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1],
        );
        expect([unit, exposure]).toEqual([unit, expect.any(Number)]);
        expect(exposure).toBeLessThanOrEqual(2.5);
      }
    },
  );
});

describe('deploy/README.md', () => {
  const readme = read('README.md');

  it.each([
    ['control-plane', CONTROL_PLANE_ENV],
    ['node-daemon', ENV_VARIABLES],
  ] as const)(
    'should document every %s variable with its default and meaning, as the service lists them',
    (table, rows) => {
      const block = tableBlock(readme, table);
      expect(block).toBeDefined();
      const documented = block!
        .split('\n')
        .slice(2)
        .map((line) =>
          line
            .replace(/^\|\s*|\s*\|$/g, '')
            .split(/\s+\|\s+/)
            .map((c) => c.trim()),
        );
      expect(documented).toEqual(rows.map((r) => rowCells(r)));
    },
  );

  it('should describe every compose service and every variable of .env.example', () => {
    for (const name of Object.keys(services)) {
      expect([name, readme.includes(`\`${name}\``)]).toEqual([name, true]);
    }
    const example = read('.env.example');
    for (const [, name] of example.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)) {
      expect([name, readme.includes(`\`${name}\``)]).toEqual([name, true]);
    }
  });
});
