import { describe, expect, it } from '@jest/globals';
import {
  attemptedAuthMethod,
  generateApiKey,
  hashSecret,
  parseApiKey,
  secretMatches,
} from './api-key.js';
import { AccessTokens } from './access-token.js';
import { hashPassword, passwordProblem, verifyPassword } from './password.js';
import {
  grantsOn,
  guestGrant,
  holdsAnywhere,
  obviousRunAsViolation,
  projectsWith,
  type Principal,
} from './principal.js';
import { parseRestrictions } from './permissions.js';

const principal = (bindings: Principal['bindings']): Principal => ({
  userId: 'u',
  username: 'u',
  authMethod: 'jwt',
  bindings,
});

describe('API keys', () => {
  it('should generate keys that parse, and match only their own secret', () => {
    const k = generateApiKey();
    expect(k.token).toMatch(/^lq_[a-z0-9]{8}_[A-Za-z0-9]{40}$/);
    const parsed = parseApiKey(k.token)!;
    expect(parsed.prefix).toBe(k.prefix);
    expect(secretMatches(parsed.secret, hashSecret(k.secret))).toBe(true);
    expect(secretMatches(`${parsed.secret}x`, hashSecret(k.secret))).toBe(false);
    expect(parseApiKey('lq_short_x')).toBeUndefined();
  });

  it('should name how a refused caller tried to authenticate, from its Authorization header', () => {
    expect(attemptedAuthMethod('Bearer lq_abcdefgh_x')).toBe('api_key');
    expect(attemptedAuthMethod('bearer  lq_abcdefgh_x')).toBe('api_key');
    expect(attemptedAuthMethod('Bearer eyJhbGciOi.x.y')).toBe('jwt');
    expect(attemptedAuthMethod('Basic dXNlcjpwYXNz')).toBe('jwt');
    expect(attemptedAuthMethod('')).toBe('none');
    expect(attemptedAuthMethod(undefined)).toBe('none');
  });
});

describe('passwords', () => {
  it('should verify the right password only, with a self-describing scrypt hash', async () => {
    const h = await hashPassword('correct horse battery', { logN: 10, r: 8, p: 1 });
    expect(h).toMatch(/^scrypt\$10\$8\$1\$/);
    expect(await verifyPassword('correct horse battery', h)).toBe(true);
    expect(await verifyPassword('correct horse batterY', h)).toBe(false);
    expect(await verifyPassword('x', 'garbage')).toBe(false);
    expect(passwordProblem('short')).toMatch(/at least 12/);
  });
});

describe('access tokens', () => {
  it('should reject expired, tampered and foreign tokens', async () => {
    const t = new AccessTokens(Buffer.alloc(32, 1), 60);
    const token = await t.sign({ userId: 'u1', username: 'alice', generation: 3 });
    expect(await t.verify(token)).toEqual({
      userId: 'u1',
      username: 'alice',
      generation: 3,
      expiresAt: expect.any(Number),
    });
    const old = await t.sign(
      { userId: 'u1', username: 'alice', generation: 0 },
      Date.now() - 3_600_000,
    );
    expect(await t.verify(old)).toEqual({ invalid: 'token expired' });
    const other = new AccessTokens(Buffer.alloc(32, 2), 60);
    expect(await other.verify(token)).toEqual({ invalid: 'bad token signature' });
    expect(await t.verify('not.a.jwt')).toMatchObject({ invalid: expect.any(String) });
  });
});

describe('bindings', () => {
  const p = principal([
    { role: 'operator', projectId: 'a', restrictions: {} },
    { role: 'viewer', projectId: null, restrictions: {} },
    { role: 'operator', projectId: 'b', restrictions: { exec_non_root: true } },
  ]);

  it('should grant per project and globally', () => {
    expect(grantsOn(p, 'guest.exec', 'a')).toHaveLength(1);
    expect(grantsOn(p, 'guest.exec', 'c')).toHaveLength(0);
    expect(grantsOn(p, 'vm.read', 'c')).toHaveLength(1);
    expect(holdsAnywhere(p, 'audit.read')).toBe(false);
    expect(projectsWith(p, 'guest.exec')).toEqual(['a', 'b']);
    expect(projectsWith(p, 'vm.read')).toBe('all');
  });

  it('should carry run-as rules of restricted bindings unless a less restricted one grants it', () => {
    expect(guestGrant(p, 'guest.exec', 'a')).toEqual({
      granted: true,
      grant: { runAs: undefined, anyGroup: false, filePaths: undefined },
    });
    expect(guestGrant(p, 'guest.exec', 'b')).toEqual({
      granted: true,
      grant: { runAs: [{ nonRoot: true, users: undefined }], anyGroup: false, filePaths: [] },
    });
    const both = principal([
      { role: 'operator', projectId: 'b', restrictions: { exec_non_root: true } },
      { role: 'operator', projectId: null, restrictions: {} },
    ]);
    expect(guestGrant(both, 'guest.exec', 'b')).toMatchObject({ grant: { runAs: undefined } });
    const admin = principal([{ role: 'admin', projectId: 'b', restrictions: {} }]);
    expect(guestGrant(admin, 'guest.exec', 'b')).toMatchObject({ grant: { anyGroup: true } });
  });

  it('should refuse root operations and files to a restricted binding unless it names them', () => {
    expect(guestGrant(p, 'guest.power', 'b')).toMatchObject({ granted: false });
    expect(guestGrant(p, 'guest.file.write', 'b')).toMatchObject({ granted: false });
    expect(guestGrant(p, 'guest.password', 'b')).toMatchObject({ granted: true });
    const allowed = principal([
      {
        role: 'operator',
        projectId: 'b',
        restrictions: {
          exec_users: ['deploy'],
          file_paths: ['/srv/app'],
          allow_root_operations: ['guest.power'],
        },
      },
    ]);
    expect(guestGrant(allowed, 'guest.power', 'b')).toMatchObject({ granted: true });
    expect(guestGrant(allowed, 'guest.time', 'b')).toMatchObject({ granted: false });
    expect(guestGrant(allowed, 'guest.file.write', 'b')).toMatchObject({
      grant: { filePaths: ['/srv/app'], runAs: [{ nonRoot: false, users: ['deploy'] }] },
    });
  });

  it('should refuse the spellings of root at once and leave numeric uids to the agent', () => {
    const nonRoot = [{ nonRoot: true }];
    for (const u of ['', 'root', ' root', '0', '00', '000']) {
      expect(obviousRunAsViolation(nonRoot, u)).toMatch(/non-root/);
    }
    expect(obviousRunAsViolation(nonRoot, 'nobody')).toBeUndefined();
    expect(obviousRunAsViolation(nonRoot, '65534')).toBeUndefined();
    const deploy = [{ nonRoot: false, users: ['deploy'] }];
    expect(obviousRunAsViolation(deploy, 'alice')).toMatch(/deploy/);
    expect(obviousRunAsViolation(deploy, '1000')).toBeUndefined();
    expect(obviousRunAsViolation([...nonRoot, ...deploy], 'alice')).toBeUndefined();
  });

  it('should refuse unknown restrictions by name', () => {
    expect(() => parseRestrictions({ exec_as: 'x' })).toThrow(/restrictions.exec_as/);
    expect(parseRestrictions({ exec_users: ['deploy'] })).toEqual({ exec_users: ['deploy'] });
    expect(() => parseRestrictions({ file_paths: ['/srv/../etc'] })).toThrow(/file_paths/);
    expect(() => parseRestrictions({ file_paths: ['srv'] })).toThrow(/file_paths/);
    expect(() => parseRestrictions({ allow_root_operations: ['guest.exec'] })).toThrow(
      /allow_root_operations/,
    );
    expect(() => parseRestrictions({ exec_users: [] })).toThrow(/exec_users/);
  });
});
