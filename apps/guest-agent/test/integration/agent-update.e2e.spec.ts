// Self-update in the guest (issue 19 items 3 and 5, acceptance 2 and 3), with real agent
// processes: the agent's Node bundle built as version A and B, updated over its socket the way
// the node daemon relays it, re-executed by the watchdog, and a deliberately broken build rolled
// back. Every refusal leaves the running agent as it was.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  AgentUpdateRequestSchema,
  ErrorCode,
  PingRequestSchema,
  signKeyList,
  signRelease,
  type AgentUpdateResponse,
} from '@lq/proto';
import { AgentClient, AgentRequestError } from '@lq/host';
import {
  NODE_TARGET,
  buildAgentBundle,
  killProcessesMentioning,
  releaseKey,
  sha256Of,
  writeBrokenBuild,
  type ReleaseKey,
} from '../../../../test/support/agent-release.js';

const A = '1.0.0';
const B = '1.1.0';
const C = '1.2.0';
const CHUNK = 256 * 1024;

describe('agent self-update (agent.update)', () => {
  let dir: string;
  let exe: string;
  let socketPath: string;
  let stateDir: string;
  let key: ReleaseKey;
  let builds: Record<string, string>;
  let first: ChildProcess;
  let client: AgentClient;
  let stderr = '';

  async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
    const end = Date.now() + ms;
    let last: unknown;
    while (Date.now() < end) {
      try {
        const v = await fn();
        if (v !== undefined) {
          return v;
        }
      } catch (err) {
        last = err;
      }
      await sleep(200);
    }
    throw new Error(`${what}: not within ${ms} ms (last error: ${String(last)})\n${stderr}`);
  }

  function call(fields: Parameters<typeof create<typeof AgentUpdateRequestSchema>>[1]) {
    return client.call(
      { case: 'agentUpdate', value: create(AgentUpdateRequestSchema, fields) },
      'agentUpdateResponse',
      { timeoutMs: 60_000 },
    );
  }

  async function version(): Promise<string> {
    const pong = await client.call({ case: 'ping', value: create(PingRequestSchema, {}) }, 'pong', {
      timeoutMs: 5000,
    });
    return pong.agentVersion;
  }

  /** Sends a file as an update in chunks; the last chunk commits with `release`. */
  async function sendUpdate(
    updateId: string,
    file: string,
    release: { version: string; target?: string; sha256?: string; signature?: Uint8Array },
    extra: { allowDowngrade?: boolean; keyList?: Uint8Array; keyListSignature?: Uint8Array } = {},
  ): Promise<AgentUpdateResponse> {
    const bytes = readFileSync(file);
    const target = release.target ?? NODE_TARGET;
    const sha256 = release.sha256 ?? sha256Of(file);
    const signature =
      release.signature ??
      signRelease(key.key, { version: release.version, target, sha256, size: bytes.length });
    let answer: AgentUpdateResponse | undefined;
    for (let offset = 0; offset < bytes.length; offset += CHUNK) {
      const last = offset + CHUNK >= bytes.length;
      answer = await call({
        updateId,
        size: BigInt(bytes.length),
        offset: BigInt(offset),
        data: bytes.subarray(offset, offset + CHUNK),
        ...(last
          ? { commit: true, version: release.version, target, sha256, signature, ...extra }
          : {}),
      });
    }
    return answer!;
  }

  async function refused(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentRequestError);
    // Code and message in one expectation, so a failure shows what the agent said (and its log).
    expect({
      code: ErrorCode[(err as AgentRequestError).code],
      message: (err as Error).message,
      ...(ErrorCode[(err as AgentRequestError).code] === ErrorCode[code]
        ? {}
        : { agentLog: stderr.slice(-4000) }),
    }).toEqual({ code: ErrorCode[code], message: expect.stringMatching(message) });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-agent-update-'));
    mkdirSync(join(dir, 'bin'));
    exe = join(dir, 'bin', 'limiquantix-agent.cjs');
    socketPath = join(dir, 'agent.sock');
    stateDir = join(dir, 'state');
    key = releaseKey();
    builds = { [A]: join(dir, 'a.cjs'), [B]: join(dir, 'b.cjs'), [C]: join(dir, 'broken.cjs') };
    await buildAgentBundle(A, builds[A]!);
    await buildAgentBundle(B, builds[B]!);
    writeBrokenBuild(builds[C]!);
    writeFileSync(exe, readFileSync(builds[A]!), { mode: 0o755 });
    writeFileSync(
      join(dir, 'agent.json'),
      JSON.stringify({
        log_level: 'info',
        update: { state_dir: stateDir, ready_timeout_ms: 10_000, release_keys: [key.publicKey] },
      }),
    );
    first = spawn(
      process.execPath,
      [exe, '--listen', socketPath, '--config', join(dir, 'agent.json')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    first.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await until('agent socket', async () => (existsSync(socketPath) ? true : undefined));
    client = new AgentClient({
      path: socketPath,
      hostId: 'test',
      reconnect: true,
      reconnectMaxMs: 200,
      keepaliveMs: 500,
    });
    client.start();
    await client.waitReady(10_000);
  }, 120_000);

  afterAll(() => {
    client?.close();
    first?.kill('SIGKILL');
    first?.stderr?.destroy();
    // The agents a watchdog started run in sessions of their own.
    killProcessesMentioning(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('should report its version and build target in AgentReady', async () => {
    const info = await until('ready info', async () => client.info ?? undefined);
    expect(info.agentVersion).toBe(A);
    expect(info.agentTarget).toBe(NODE_TARGET);
    expect(info.lastUpdate).toBeUndefined();
  });

  it('should refuse a release whose signature does not verify and keep running', async () => {
    const stranger = releaseKey();
    const bytes = readFileSync(builds[B]!);
    await refused(
      sendUpdate('bad-sig', builds[B]!, {
        version: B,
        signature: signRelease(stranger.key, {
          version: B,
          target: NODE_TARGET,
          sha256: sha256Of(builds[B]!),
          size: bytes.length,
        }),
      }),
      ErrorCode.NOT_ALLOWED,
      /signature does not verify/,
    );
    expect(await version()).toBe(A);
    expect(readFileSync(exe).equals(readFileSync(builds[A]!))).toBe(true);
    expect(existsSync(`${exe}.update-bad-sig`)).toBe(false);
  });

  it('should refuse a release whose sha256 differs from the bytes received', async () => {
    await refused(
      sendUpdate('bad-sum', builds[B]!, { version: B, sha256: 'ab'.repeat(32) }),
      ErrorCode.NOT_ALLOWED,
      /sha256 of the received executable is [0-9a-f]{64}, the release says abab/,
    );
    expect(await version()).toBe(A);
  });

  it('should refuse another build target and a downgrade unless asked for', async () => {
    await refused(
      sendUpdate('other-target', builds[B]!, { version: B, target: 'linux-arm64' }),
      ErrorCode.NOT_ALLOWED,
      new RegExp(`release target linux-arm64 is not this agent's ${NODE_TARGET}`),
    );
    await refused(
      sendUpdate('downgrade', builds[B]!, { version: '0.9.0' }),
      ErrorCode.NOT_ALLOWED,
      /version 0.9.0 is not newer than the running 1.0.0 \(allow_downgrade/,
    );
    expect(await version()).toBe(A);
  });

  it('should swap in B, restart it, and report B with the update ok', async () => {
    const committed = await sendUpdate('to-b', builds[B]!, { version: B });
    expect(committed.state).toBe('restarting');
    expect(committed.version).toBe(A);
    const status = await until('B ready', async () => {
      const s = await call({ updateId: 'to-b', status: true });
      return s.version === B && s.lastUpdate?.result === 'ok' ? s : undefined;
    });
    expect(status.lastUpdate).toMatchObject({ updateId: 'to-b', fromVersion: A, toVersion: B });
    expect(readFileSync(exe).equals(readFileSync(builds[B]!))).toBe(true);
    expect(readFileSync(`${exe}.previous`).equals(readFileSync(builds[A]!))).toBe(true);
    // The old process is gone; AgentReady now says B and how the update ended.
    await until('old agent exits', async () => (first.exitCode !== null ? true : undefined));
    const info = await until('B announced', async () =>
      client.info?.agentVersion === B ? client.info : undefined,
    );
    expect(info.lastUpdate?.result).toBe('ok');
  }, 120_000);

  it('should roll a build that exits at start back to the running version', async () => {
    const committed = await sendUpdate('to-broken', builds[C]!, { version: C });
    expect(committed.state).toBe('restarting');
    const status = await until('rolled back', async () => {
      const s = await call({ updateId: 'to-broken', status: true });
      return s.lastUpdate?.updateId === 'to-broken' && s.lastUpdate.result === 'rolled_back'
        ? s
        : undefined;
    });
    expect(status.version).toBe(B);
    expect(status.lastUpdate?.reason).toMatch(/exited with code 3 before it said AgentReady/);
    expect(readFileSync(exe).equals(readFileSync(builds[B]!))).toBe(true);
    const info = await until('B announced again', async () =>
      client.info?.lastUpdate?.updateId === 'to-broken' ? client.info : undefined,
    );
    expect(info.agentVersion).toBe(B);
    expect(info.lastUpdate?.result).toBe('rolled_back');
  }, 120_000);

  it('should roll back a build that starts but never says AgentReady, at the deadline', async () => {
    const hang = join(dir, 'hang.cjs');
    writeFileSync(hang, 'setInterval(() => undefined, 1000);\n');
    expect((await sendUpdate('to-hang', hang, { version: '1.3.0' })).state).toBe('restarting');
    const status = await until('rolled back at the deadline', async () => {
      const s = await call({ updateId: 'to-hang', status: true });
      return s.lastUpdate?.updateId === 'to-hang' && s.lastUpdate.result === 'rolled_back'
        ? s
        : undefined;
    });
    expect(status.version).toBe(B);
    expect(status.lastUpdate?.reason).toMatch(/did not say AgentReady within 10 s/);
  }, 120_000);

  it('should take a rotated key from a key list signed by a key it trusts', async () => {
    const next = releaseKey();
    const list = Buffer.from(
      JSON.stringify({ keys: [next.publicKey], issued_at: new Date().toISOString() }),
    );
    // A release signed by the new key alone is refused without the list…
    const bytes = readFileSync(builds[A]!);
    const signedByNext = signRelease(next.key, {
      version: A,
      target: NODE_TARGET,
      sha256: sha256Of(builds[A]!),
      size: bytes.length,
    });
    await refused(
      sendUpdate(
        'rotated-1',
        builds[A]!,
        { version: A, signature: signedByNext },
        {
          allowDowngrade: true,
        },
      ),
      ErrorCode.NOT_ALLOWED,
      /signature does not verify/,
    );
    // …and a list signed by an untrusted key is refused too.
    await refused(
      sendUpdate(
        'rotated-2',
        builds[A]!,
        { version: A, signature: signedByNext },
        {
          allowDowngrade: true,
          keyList: list,
          keyListSignature: signKeyList(next.key, list),
        },
      ),
      ErrorCode.NOT_ALLOWED,
      /key_list_signature does not verify/,
    );
    // With the list signed by the trusted key, the downgrade to A goes through.
    const committed = await sendUpdate(
      'rotated-3',
      builds[A]!,
      { version: A, signature: signedByNext },
      { allowDowngrade: true, keyList: list, keyListSignature: signKeyList(key.key, list) },
    );
    expect(committed.state).toBe('restarting');
    await until('A ready', async () => {
      const s = await call({ updateId: 'rotated-3', status: true });
      return s.version === A && s.lastUpdate?.result === 'ok' ? s : undefined;
    });
  }, 120_000);

  it('should put the previous executable back when the watchdog launcher fails', async () => {
    // A service manager restarts this agent, and its launcher (systemd-run, say) fails: without
    // a watchdog nothing would guard B, so the agent itself restores A and reports rolled_back.
    const own = join(dir, 'no-watchdog');
    mkdirSync(own);
    const ownExe = join(own, 'agent.cjs');
    writeFileSync(ownExe, readFileSync(builds[A]!), { mode: 0o755 });
    writeFileSync(
      join(own, 'agent.json'),
      JSON.stringify({
        update: {
          executable: ownExe,
          state_dir: join(own, 'state'),
          ready_timeout_ms: 10_000,
          release_keys: [key.publicKey],
          restart_command: ['/bin/true'],
          watchdog_launcher: ['/bin/false'],
        },
      }),
    );
    const ownSocket = join(own, 'agent.sock');
    const agent = spawn(
      process.execPath,
      [ownExe, '--listen', ownSocket, '--config', join(own, 'agent.json')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    agent.stderr.on('data', (d: Buffer) => {
      log += d.toString();
    });
    await until('agent socket', async () => (existsSync(ownSocket) ? true : undefined));
    const other = new AgentClient({ path: ownSocket, hostId: 'test', reconnect: true });
    other.start();
    try {
      await other.waitReady(10_000);
      const send = (fields: Parameters<typeof create<typeof AgentUpdateRequestSchema>>[1]) =>
        other.call(
          { case: 'agentUpdate', value: create(AgentUpdateRequestSchema, fields) },
          'agentUpdateResponse',
          { timeoutMs: 60_000 },
        );
      const bytes = readFileSync(builds[B]!);
      const sha256 = sha256Of(builds[B]!);
      let committed: AgentUpdateResponse | undefined;
      for (let offset = 0; offset < bytes.length; offset += CHUNK) {
        const last = offset + CHUNK >= bytes.length;
        committed = await send({
          updateId: 'no-watchdog',
          size: BigInt(bytes.length),
          offset: BigInt(offset),
          data: bytes.subarray(offset, offset + CHUNK),
          ...(last
            ? {
                commit: true,
                version: B,
                target: NODE_TARGET,
                sha256,
                signature: signRelease(key.key, {
                  version: B,
                  target: NODE_TARGET,
                  sha256,
                  size: bytes.length,
                }),
              }
            : {}),
        });
      }
      expect(committed?.state).toBe('restarting');
      const status = await until('undone', async () => {
        const s = await send({ updateId: 'no-watchdog', status: true });
        return s.lastUpdate?.result === 'rolled_back' ? s : undefined;
      });
      expect({ version: status.version, reason: status.lastUpdate?.reason, log }).toEqual({
        version: A,
        reason: 'the watchdog did not start: /bin/false exited with status 1',
        log: expect.any(String),
      });
      expect(readFileSync(ownExe).equals(readFileSync(builds[A]!))).toBe(true);
      expect(existsSync(`${ownExe}.previous`)).toBe(false);
    } finally {
      other.close();
      agent.kill('SIGKILL');
    }
  }, 120_000);
});
