import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  ErrorCode,
  SetUserPasswordRequestSchema,
  SyncTimeRequestSchema,
  type AgentPayload,
} from '@lq/proto';
import { defaultConfig, type AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { UserResolver } from '../exec/user-resolver.js';
import { Logger } from '../logger.js';
import type { HandlerContext } from './handler.js';
import { SetUserPasswordHandler } from './set-password.handler.js';
import { SyncTimeHandler } from './sync-time.handler.js';

// The clock, the RTC and chpasswd are test doubles that record what they were asked.
describe('time sync and password handlers', () => {
  let dir: string;
  let config: AgentConfig;
  const logged: string[] = [];
  const ctx = {
    messageId: 'm1',
    log: Object.assign(new Logger('debug'), {
      info: (msg: string, fields?: Record<string, unknown>) =>
        logged.push(`${msg} ${JSON.stringify(fields)}`),
    }),
    afterReply: () => undefined,
    emit: () => undefined,
  } as unknown as HandlerContext;
  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };
  const timeResult = (p: AgentPayload) => {
    if (p.case !== 'syncTimeResponse') {
      throw new Error(`unexpected ${p.case}`);
    }
    return p.value;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-admin-'));
    config = defaultConfig();
    config.commands.set_clock = [script('date', `echo "$@" > ${dir}/clock`)];
    config.commands.hwclock_systohc = [script('hwclock', `echo rtc > ${dir}/rtc`)];
    config.commands.chronyc = join(dir, 'no-chronyc');
    config.commands.systemctl = join(dir, 'no-systemctl');
    config.commands.ntpdate = join(dir, 'no-ntpdate');
    config.commands.chpasswd = [
      script('chpasswd', `cat > ${dir}/chpasswd.in; echo "$@" > ${dir}/chpasswd.args`),
    ];
    writeFileSync(
      join(dir, 'passwd'),
      'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n',
    );
    writeFileSync(join(dir, 'group'), 'root:x:0:\nalice:x:1000:\n');
    config.system.passwd_file = join(dir, 'passwd');
    config.system.group_file = join(dir, 'group');
    config.commands.getent = join(dir, 'no-getent');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('should set the clock and the RTC from host_time when no time service is found', async () => {
    const host = Date.now() + 3_600_000;
    const r = timeResult(
      await new SyncTimeHandler(config).handle(
        create(SyncTimeRequestSchema, { hostTime: timestampFromMs(host) }),
        ctx,
      ),
    );
    expect(r.method).toBe('host_time');
    expect(r.offsetBeforeMs).toBeGreaterThan(3_599_000);
    const set = Number(readFileSync(join(dir, 'clock'), 'utf8').trim().replace('@', '')) * 1000;
    expect(Math.abs(set - host)).toBeLessThan(1000);
    expect(readFileSync(join(dir, 'rtc'), 'utf8').trim()).toBe('rtc');
  });

  it('should use chrony when it answers, and say so', async () => {
    const c = {
      ...config,
      commands: {
        ...config.commands,
        chronyc: script('chronyc', `echo "$1" >> ${dir}/chronyc.log`),
      },
    };
    const r = timeResult(
      await new SyncTimeHandler(c).handle(create(SyncTimeRequestSchema, {}), ctx),
    );
    expect(r.method).toBe('chrony');
    expect(readFileSync(join(dir, 'chronyc.log'), 'utf8').trim().split('\n')).toEqual([
      'tracking',
      'makestep',
    ]);
  });

  it('should refuse without a time service or host_time', async () => {
    const err = await new SyncTimeHandler(config)
      .handle(create(SyncTimeRequestSchema, {}), ctx)
      .catch((e: unknown) => e);
    expect((err as AgentOpError).code).toBe(ErrorCode.NOT_FOUND);
  });

  it('should feed chpasswd on stdin and never log the password', async () => {
    const h = new SetUserPasswordHandler(config, new UserResolver(config));
    await h.handle(
      create(SetUserPasswordRequestSchema, {
        username: 'alice',
        secret: { case: 'password', value: 'S3cret-value!' },
      }),
      ctx,
    );
    expect(readFileSync(join(dir, 'chpasswd.in'), 'utf8')).toBe('alice:S3cret-value!\n');
    await h.handle(
      create(SetUserPasswordRequestSchema, {
        username: 'alice',
        secret: { case: 'cryptedHash', value: '$6$salt$hashhash' },
      }),
      ctx,
    );
    expect(readFileSync(join(dir, 'chpasswd.args'), 'utf8').trim()).toBe('-e');
    expect(logged.join('\n')).not.toContain('S3cret');
    const unknown = await h
      .handle(
        create(SetUserPasswordRequestSchema, {
          username: 'bob',
          secret: { case: 'password', value: 'x' },
        }),
        ctx,
      )
      .catch((e: unknown) => e);
    expect((unknown as AgentOpError).code).toBe(ErrorCode.USER_NOT_FOUND);
    const bad = await h
      .handle(
        create(SetUserPasswordRequestSchema, {
          username: 'alice',
          secret: { case: 'password', value: 'a\nb' },
        }),
        ctx,
      )
      .catch((e: unknown) => e);
    expect((bad as AgentOpError).code).toBe(ErrorCode.INVALID_REQUEST);
    expect((bad as AgentOpError).message).not.toContain('a\nb');
  });
});
