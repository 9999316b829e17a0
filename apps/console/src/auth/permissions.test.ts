import { describe, expect, it } from 'vitest';
import type { MeBindingView, MeView, Permission, Role } from '@lq/api';
import { can, canEverywhere, execLimits, rolesLabel } from './permissions';

// What GET /api/auth/me says each of these roles grants (the server decides; see libs/auth).
const GRANTS: Partial<Record<Role, Permission[]>> = {
  operator: ['vm.read', 'guest.exec', 'guest.power'],
  viewer: ['vm.read'],
  admin: ['vm.read', 'guest.exec', 'admin'],
};

function binding(
  role: Role,
  project: string,
  restrictions: MeBindingView['restrictions'] = {},
): MeBindingView {
  return { role, project, restrictions, permissions: GRANTS[role] ?? [] };
}

function me(bindings: MeBindingView[], permissions: MeView['permissions']): MeView {
  return { user_id: 'u', username: 'u', auth_method: 'jwt', api_key: null, bindings, permissions };
}

const operatorOnPayments = me([binding('operator', 'payments'), binding('viewer', '*')], {
  'vm.read': 'all',
  'guest.exec': ['payments'],
  'guest.power': ['payments'],
});

describe('can', () => {
  it('should allow on a listed project and on every project with "all"', () => {
    expect(can(operatorOnPayments, 'guest.exec', 'payments')).toBe(true);
    expect(can(operatorOnPayments, 'vm.read', 'anything')).toBe(true);
  });

  it('should deny on another project, for a permission not held, and before sign-in', () => {
    expect(can(operatorOnPayments, 'guest.exec', 'default')).toBe(false);
    expect(can(operatorOnPayments, 'audit.read')).toBe(false);
    expect(can(undefined, 'vm.read')).toBe(false);
  });

  it('should allow without a project when the permission is held somewhere', () => {
    expect(can(operatorOnPayments, 'guest.exec')).toBe(true);
    expect(can(me([], { 'audit.read': [] }), 'audit.read')).toBe(false);
  });

  it('should tell a global grant from a per-project one', () => {
    expect(canEverywhere(me([], { 'audit.read': 'all' }), 'audit.read')).toBe(true);
    expect(canEverywhere(me([], { 'audit.read': ['p'] }), 'audit.read')).toBe(false);
  });
});

describe('execLimits', () => {
  it('should require a non-root user when every granting binding says so', () => {
    const m = me([binding('operator', 'p', { exec_non_root: true })], {});
    expect(execLimits(m, 'p')).toEqual({ nonRootOnly: true, users: undefined });
  });

  it('should lift the limits when one granting binding has none (the least restricted wins)', () => {
    const m = me([binding('operator', 'p', { exec_users: ['deploy'] }), binding('admin', '*')], {});
    expect(execLimits(m, 'p')).toEqual({ nonRootOnly: false });
  });

  it('should list the allowed users and ignore bindings that cannot run commands', () => {
    const m = me(
      [binding('operator', 'p', { exec_users: ['deploy', 'app'] }), binding('viewer', '*')],
      {},
    );
    expect(execLimits(m, 'p')).toEqual({ nonRootOnly: false, users: ['deploy', 'app'] });
  });
});

describe('rolesLabel', () => {
  it('should say where each role applies', () => {
    expect(rolesLabel(operatorOnPayments)).toBe('operator on payments, viewer');
  });
});
