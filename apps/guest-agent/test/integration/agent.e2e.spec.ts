// Acceptance tests of the guest agent (issue 2): the real agent bundle on a real Unix socket,
// driven by the same host client the node daemon uses.
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  ExecuteRequestSchema,
  GetInfoRequestSchema,
  PingRequestSchema,
  ShutdownMode,
  ShutdownRequestSchema,
  type AgentInfo,
  type ExecuteResponse,
  type TelemetryReport,
} from '@lq/proto';
import { AgentRequestError, readGuestFile, writeGuestFile, type AgentClient } from '@lq/host';
import { startAgent, type RunningAgent } from '../support/agent-process.js';

const MiB = 1024 * 1024;

function exec(
  client: AgentClient,
  fields: Parameters<typeof create<typeof ExecuteRequestSchema>>[1],
  timeoutMs = 30_000,
): Promise<ExecuteResponse> {
  return client.call(
    { case: 'execute', value: create(ExecuteRequestSchema, fields) },
    'executeResponse',
    { timeoutMs },
  );
}

/** Processes in a process group that are not zombies. */
function liveMembersOfGroup(pgid: number): string[] {
  const live: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name (which may hold spaces): state ppid pgrp ...
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') {
      live.push(`${pid} ${stat}`);
    }
  }
  return live;
}

function text(b: Uint8Array): string {
  return Buffer.from(b).toString('utf8');
}

async function expectAgentError(
  p: Promise<unknown>,
  code: ErrorCode,
  message: RegExp,
): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentRequestError);
  expect(ErrorCode[(err as AgentRequestError).code]).toBe(ErrorCode[code]);
  expect((err as Error).message).toMatch(message);
}

describe('guest agent over a Unix socket', () => {
  let agent: RunningAgent;
  let client: AgentClient;
  let root: string;
  let recorder: string;
  let fixtures: string;

  beforeAll(async () => {
    fixtures = mkdtempSync(join(tmpdir(), 'lq-agent-fixtures-'));
    root = join(fixtures, 'root');
    mkdirSync(root);
    recorder = join(fixtures, 'record-shutdown.sh');
    writeFileSync(recorder, `#!/bin/sh\necho "$@" > "${fixtures}/shutdown-called"\n`);
    chmodSync(recorder, 0o755);
    // A user that exists only in the agent's passwd/group files: ids are set by number, so
    // nothing on the test machine changes.
    writeFileSync(
      join(fixtures, 'passwd'),
      `${readFileSync('/etc/passwd', 'utf8')}lqtest:x:4242:4242:LQ test:/tmp:/bin/sh\n`,
    );
    writeFileSync(
      join(fixtures, 'group'),
      `${readFileSync('/etc/group', 'utf8')}lqtest:x:4242:\nlqextra1:x:4243:lqtest\nlqextra2:x:4244:nobody,lqtest\n`,
    );
    agent = await startAgent({
      telemetry_interval_ms: 300,
      exec: { kill_grace_ms: 500 },
      files: { roots: [root] },
      commands: {
        poweroff: [recorder, 'poweroff'],
        reboot: [recorder, 'reboot'],
        halt: [recorder, 'halt'],
      },
      system: { passwd_file: join(fixtures, 'passwd'), group_file: join(fixtures, 'group') },
    });
    client = await agent.client();
  });

  afterAll(async () => {
    await agent?.stop();
    rmSync(fixtures, { recursive: true, force: true });
  });

  it('should answer ping and info, and push AgentReady with hostname, OS and an addressed interface on sync', async () => {
    // A second client replaces the first and syncs; the agent then announces itself.
    const second = await agent.client();
    for (let i = 0; i < 100 && !second.info; i++) {
      await sleep(20);
    }
    const info = second.info as AgentInfo;
    expect(info.hostname.length).toBeGreaterThan(0);
    expect(info.os?.name).toMatch(/\w/);
    expect(info.os?.kernelRelease).toMatch(/\d/);
    expect(info.interfaces.some((i) => i.ipv4.length + i.ipv6.length > 0)).toBe(true);
    expect(info.interfaces.map((i) => i.name)).not.toContain('lo');
    expect(info.capabilities).toEqual(expect.arrayContaining(['ping', 'execute', 'file.read']));

    const pong = await second.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
    expect(pong.agentVersion).toBe(second.agentVersion);
    const got = await second.call(
      { case: 'getInfo', value: create(GetInfoRequestSchema) },
      'getInfoResponse',
    );
    expect(got.info?.hostname).toBe(info.hostname);
    second.close();
    client = await agent.client();
  });

  it('should push telemetry with CPU, memory, disks and network while a host is connected', async () => {
    const report = await new Promise<TelemetryReport>((resolve) =>
      client.once('telemetry', resolve),
    );
    expect(report.cpuCount).toBeGreaterThan(0);
    expect(Number(report.memory?.totalBytes)).toBeGreaterThan(0);
    expect(report.disks.length).toBeGreaterThan(0);
    expect(report.processCount).toBeGreaterThan(0);
    expect(report.uptimeSeconds).toBeGreaterThan(0);
  });

  it('should run 100 executions in flight at once on one connection, each with its own output', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        exec(client, {
          argv: [
            '/bin/sh',
            '-c',
            'sleep 0.2; echo "out-$1"; echo "err-$1" >&2; exit $(($1 % 7))',
            'sh',
            String(i),
          ],
        }),
      ),
    );
    results.forEach((r, i) => {
      expect(text(r.stdout)).toBe(`out-${i}\n`);
      expect(text(r.stderr)).toBe(`err-${i}\n`);
      expect(r.exitCode).toBe(i % 7);
    });
  });

  it('should cap 50 MiB of output with the truncation flag and keep the agent memory bounded', async () => {
    const before = agent.memory();
    const r = await exec(client, { command: 'head -c 52428800 /dev/zero; echo done >&2' });
    const after = agent.memory();
    expect(r.exitCode).toBe(0);
    expect(r.stdout.length).toBe(1 * MiB);
    expect(r.stdoutTruncated).toBe(true);
    expect(Number(r.stdoutTotalBytes)).toBe(50 * MiB);
    expect(text(r.stderr)).toBe('done\n');
    expect(r.stderrTruncated).toBe(false);
    process.stderr.write(
      `[agent memory] 50 MiB output: RSS before ${(before.rss / MiB).toFixed(1)} MiB, peak (VmHWM) ${(after.hwm / MiB).toFixed(1)} MiB, after ${(after.rss / MiB).toFixed(1)} MiB\n`,
    );
    // What shows here (32-57 MiB over runs) is pipe chunks the GC has not collected yet, so this
    // run's peak says nothing by itself about buffering. Four times the output must not grow it
    // much: the cost is bounded, not per byte.
    const big = await exec(client, { command: 'head -c 209715200 /dev/zero' });
    const afterBig = agent.memory();
    process.stderr.write(
      `[agent memory] 200 MiB output: peak (VmHWM) ${(afterBig.hwm / MiB).toFixed(1)} MiB\n`,
    );
    expect(Number(big.stdoutTotalBytes)).toBe(200 * MiB);
    // 150 MiB more output than the first run: a per-byte cost would show as 150 MiB more peak;
    // what shows is GC timing: 3-10 MiB on Node.js over clean-clone runs, 20-48 MiB with the
    // executable's JavaScriptCore (more on a machine with more free memory), which collects the
    // discarded pipe chunks later. Half the extra output tells the two apart.
    expect(afterBig.hwm - after.hwm).toBeLessThan(75 * MiB);
  });

  it('should kill a SIGTERM-ignoring command and its children at the timeout and say it timed out', async () => {
    const t0 = Date.now();
    const r = await exec(client, {
      command: 'trap "" TERM; sleep 60 & sleep 60; echo never',
      timeoutMs: 1000,
    });
    const elapsed = Date.now() - t0;
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.exitCode).toBeUndefined();
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    // Nothing of the process group is left running (zombies wait for an init that reaps them).
    expect(liveMembersOfGroup(r.pid)).toEqual([]);
  });

  it('should run as nobody with nobody uid and gid', async () => {
    const r = await exec(client, { command: 'id -u; id -g; id -G', runAsUser: 'nobody' });
    const [uid, gid, groups] = text(r.stdout).trim().split('\n');
    expect(uid).toBe('65534');
    expect(gid).toBe(String(r.gid));
    expect(r.uid).toBe(65534);
    // Supplementary groups are cleared by default.
    expect(groups).toBe(gid);
  });

  it('should keep supplementary groups when asked and honour an explicit group', async () => {
    const r = await exec(client, {
      argv: ['id', '-G'],
      runAsUser: 'lqtest',
      includeSupplementaryGroups: true,
    });
    expect(text(r.stdout).trim().split(' ').sort()).toEqual(['4242', '4243', '4244']);
    const g = await exec(client, {
      argv: ['id', '-g'],
      runAsUser: 'lqtest',
      runAsGroup: 'lqextra2',
    });
    expect(text(g.stdout).trim()).toBe('4244');
  });

  it('should refuse an unknown user or group before spawning anything', async () => {
    const marker = join(agent.dir, 'should-not-exist');
    await expectAgentError(
      exec(client, { argv: ['touch', marker], runAsUser: 'no-such-user-xyz' }),
      ErrorCode.USER_NOT_FOUND,
      /no-such-user-xyz/,
    );
    await expectAgentError(
      exec(client, {
        argv: ['touch', marker],
        runAsUser: 'nobody',
        runAsGroup: 'no-such-group-xyz',
      }),
      ErrorCode.GROUP_NOT_FOUND,
      /no-such-group-xyz/,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it('should write a 64 MiB file in chunks and read it back with the same sha256', async () => {
    const data = randomBytes(64 * MiB);
    const path = join(root, 'big.bin');
    async function* source() {
      for (let off = 0; off < data.length; off += 3 * MiB + 17) {
        yield data.subarray(off, Math.min(off + 3 * MiB + 17, data.length));
      }
    }
    const written = await writeGuestFile(client, path, source(), { mode: 0o640 });
    expect(written.bytes).toBe(data.length);
    expect(createHash('sha256').update(readFileSync(path)).digest('hex')).toBe(
      createHash('sha256').update(data).digest('hex'),
    );

    const hash = createHash('sha256');
    let chunks = 0;
    const read = await readGuestFile(client, path, (chunk) => {
      chunks++;
      hash.update(chunk);
    });
    expect(read.bytes).toBe(data.length);
    expect(chunks).toBeGreaterThan(1);
    expect(read.mode & 0o777).toBe(0o640);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('should refuse relative paths, .. escapes and paths outside the allowed roots', async () => {
    const sink = () => undefined;
    await expectAgentError(
      readGuestFile(client, 'etc/passwd', sink),
      ErrorCode.PATH_NOT_ALLOWED,
      /absolute/,
    );
    await expectAgentError(
      readGuestFile(client, `${root}/../agent.json`, sink),
      ErrorCode.PATH_NOT_ALLOWED,
      /normalised|\.\./,
    );
    await expectAgentError(
      readGuestFile(client, '/etc/passwd', sink),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    async function* one() {
      yield Buffer.from('x');
    }
    await expectAgentError(
      writeGuestFile(client, '/etc/lq-should-not-exist', one()),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside/,
    );
    expect(existsSync('/etc/lq-should-not-exist')).toBe(false);
  });

  it('should give a retained result again, without re-running, to a request that repeats its id', async () => {
    const first = await exec(client, { command: 'echo $$' });
    const id = 'fixed-id-for-refetch';
    const a = await client.call(
      { case: 'execute', value: create(ExecuteRequestSchema, { command: 'echo $$; date +%N' }) },
      'executeResponse',
      { messageId: id },
    );
    const b = await client.call(
      { case: 'execute', value: create(ExecuteRequestSchema, { command: 'echo $$; date +%N' }) },
      'executeResponse',
      { messageId: id },
    );
    expect(b.pid).toBe(a.pid);
    expect(text(b.stdout)).toBe(text(a.stdout));
    expect(first.pid).not.toBe(a.pid);
  });

  it('should reply to shutdown first and then run the configured command', async () => {
    const res = await client.call(
      { case: 'shutdown', value: create(ShutdownRequestSchema, { mode: ShutdownMode.REBOOT }) },
      'shutdownResponse',
    );
    expect(res.mode).toBe(ShutdownMode.REBOOT);
    const called = join(fixtures, 'shutdown-called');
    // The double's shell creates the file before it writes the word: wait for the content
    // (generously: the command runs after the reply, later on a busy machine).
    const content = () => (existsSync(called) ? readFileSync(called, 'utf8').trim() : '');
    for (const end = Date.now() + 20_000; content() === '' && Date.now() < end;) {
      await sleep(20);
    }
    expect(content()).toBe('reboot');
  });

  it('should refuse bad execute input naming the field, and a missing program as EXEC_FAILED', async () => {
    await expectAgentError(exec(client, {}), ErrorCode.INVALID_REQUEST, /argv|command/);
    await expectAgentError(
      exec(client, { argv: ['true'], command: 'true' }),
      ErrorCode.INVALID_REQUEST,
      /argv|command/,
    );
    await expectAgentError(
      exec(client, { argv: ['true'], timeoutMs: 30 * 24 * 3600 * 1000 }),
      ErrorCode.INVALID_REQUEST,
      /max_timeout_ms/,
    );
    await expectAgentError(
      exec(client, { argv: ['/no/such/program'] }),
      ErrorCode.EXEC_FAILED,
      /no\/such\/program/,
    );
  });
});

describe('guest agent policy', () => {
  let agent: RunningAgent;

  beforeAll(async () => {
    agent = await startAgent({ policy: { blocked_operations: ['execute'] } });
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it('should refuse a blocked operation with an error naming the policy, and advertise without it', async () => {
    const client = await agent.client();
    expect(client.capabilities).not.toContain('execute');
    await expectAgentError(
      exec(client, { argv: ['true'] }),
      ErrorCode.OPERATION_BLOCKED,
      /blocked by policy \(policy\.blocked_operations/,
    );
    await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
  });
});
