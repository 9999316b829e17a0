import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ErrorCode } from '@lq/proto';
import { defaultConfig, type AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { parseGroup, parsePasswd, UserResolver } from './user-resolver.js';

const PASSWD = `root:x:0:0:root:/root:/bin/bash
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh
bob:x:1001:1001::/home/bob:
broken-line
+nisuser::::::
`;

const GROUP = `root:x:0:
daemon:x:1:
alice:x:1000:
bob:x:1001:
wheel:x:10:alice
docker:x:999:bob, alice
audio:x:29:bob
`;

// Stands in for NSS (LDAP, sssd): knows one user and one group the files do not.
const FAKE_GETENT = `#!/bin/sh
case "$1 $2" in
  "passwd ldapuser"|"passwd 5000") echo "ldapuser:*:5000:5000:LDAP user:/home/ldapuser:/bin/bash" ;;
  "group ldapgroup"|"group 5001") echo "ldapgroup:*:5001:ldapuser" ;;
  "initgroups ldapuser") echo "ldapuser             5001 5002" ;;
  *) exit 2 ;;
esac
`;

async function errorOf(p: Promise<unknown>): Promise<AgentOpError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentOpError);
  return err as AgentOpError;
}

describe('UserResolver', () => {
  let dir: string;
  let config: AgentConfig;
  let resolver: UserResolver;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-users-'));
    writeFileSync(join(dir, 'passwd'), PASSWD);
    writeFileSync(join(dir, 'group'), GROUP);
    writeFileSync(join(dir, 'getent'), FAKE_GETENT);
    chmodSync(join(dir, 'getent'), 0o755);
    config = defaultConfig();
    config.system.passwd_file = join(dir, 'passwd');
    config.system.group_file = join(dir, 'group');
    config.commands.getent = join(dir, 'getent');
    resolver = new UserResolver(config);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should parse passwd and group files skipping comments, NIS markers and broken lines', () => {
    expect(parsePasswd(PASSWD).map((e) => e.name)).toEqual(['root', 'daemon', 'alice', 'bob']);
    expect(parsePasswd(PASSWD)[3]).toEqual({
      name: 'bob',
      uid: 1001,
      gid: 1001,
      home: '/home/bob',
      shell: '/bin/sh',
    });
    expect(parseGroup(GROUP).find((g) => g.name === 'docker')?.members).toEqual(['bob', 'alice']);
  });

  it('should resolve a user name to uid, primary gid, groups, home and shell when it is in the files', async () => {
    await expect(resolver.resolve('alice')).resolves.toEqual({
      name: 'alice',
      uid: 1000,
      gid: 1000,
      groups: [1000, 10, 999],
      home: '/home/alice',
      shell: '/bin/zsh',
    });
  });

  it('should resolve a numeric uid to its passwd entry when one exists', async () => {
    const user = await resolver.resolve('1001');
    expect(user).toMatchObject({ name: 'bob', uid: 1001, gid: 1001, groups: [1001, 999, 29] });
  });

  it('should allow a numeric uid without a passwd entry with home "/" when nothing knows it', async () => {
    const user = await resolver.resolve('4321');
    expect(user).toMatchObject({ name: '4321', uid: 4321, home: '/', groups: [user.gid] });
  });

  it('should use the named or numeric group when run_as_group is given', async () => {
    expect((await resolver.resolve('alice', 'docker')).gid).toBe(999);
    expect((await resolver.resolve('alice', '29')).gid).toBe(29);
    expect((await resolver.resolve('alice', '7777')).gid).toBe(7777);
  });

  it('should throw USER_NOT_FOUND naming the user when neither the files nor NSS know it', async () => {
    const err = await errorOf(resolver.resolve('mallory'));
    expect(err.code).toBe(ErrorCode.USER_NOT_FOUND);
    expect(err.message).toBe('user "mallory" does not exist in the guest');
  });

  it('should throw USER_NOT_FOUND when the name could not be a user name', async () => {
    for (const bad of ['', '-x', 'a:b', 'a\nb', '99999999999']) {
      expect((await errorOf(resolver.resolve(bad))).code).toBe(ErrorCode.USER_NOT_FOUND);
    }
  });

  it('should throw GROUP_NOT_FOUND naming the group when no one knows it', async () => {
    const err = await errorOf(resolver.resolve('alice', 'no-such-group'));
    expect(err.code).toBe(ErrorCode.GROUP_NOT_FOUND);
    expect(err.message).toBe('group "no-such-group" does not exist in the guest');
  });

  it('should fall back to getent for users, groups and memberships when the files do not know them', async () => {
    await expect(resolver.resolve('ldapuser')).resolves.toEqual({
      name: 'ldapuser',
      uid: 5000,
      gid: 5000,
      groups: [5000, 5001, 5002],
      home: '/home/ldapuser',
      shell: '/bin/bash',
    });
    expect((await resolver.resolve('5000')).name).toBe('ldapuser');
    expect((await resolver.resolve('alice', 'ldapgroup')).gid).toBe(5001);
  });

  it('should skip the membership lookup when supplementary groups are not wanted', async () => {
    const user = await resolver.resolve('alice', '', { supplementaryGroups: false });
    expect(user.groups).toEqual([1000]);
  });

  it('should re-read the passwd and group files when they change', async () => {
    const cfg = defaultConfig();
    cfg.system.passwd_file = join(dir, 'passwd2');
    cfg.system.group_file = join(dir, 'group2');
    cfg.commands.getent = join(dir, 'getent');
    writeFileSync(cfg.system.passwd_file, PASSWD);
    writeFileSync(cfg.system.group_file, GROUP);
    const r = new UserResolver(cfg);
    expect((await errorOf(r.resolve('carol'))).code).toBe(ErrorCode.USER_NOT_FOUND);
    writeFileSync(cfg.system.passwd_file, `${PASSWD}carol:x:1002:1002::/home/carol:/bin/sh\n`);
    writeFileSync(cfg.system.group_file, `${GROUP}carol:x:1002:\nops:x:2000:carol\n`);
    await expect(r.resolve('carol')).resolves.toMatchObject({ uid: 1002, groups: [1002, 2000] });
  });

  it('should resolve real system users through the real files when using the defaults', async () => {
    const real = new UserResolver(defaultConfig());
    await expect(real.resolve('root')).resolves.toMatchObject({ uid: 0, gid: 0, home: '/root' });
    await expect(real.resolve('nobody')).resolves.toMatchObject({ uid: 65534 });
  });
});
