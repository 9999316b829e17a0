import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { ErrorCode, RunAsLimitsSchema } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import { judgeRunAs } from './run-as-limits.js';

const limits = (init: Parameters<typeof create<typeof RunAsLimitsSchema>>[1]) =>
  create(RunAsLimitsSchema, init);
const nobody = { name: 'nobody', uid: 65534, gid: 65534, groups: [] };

function refusal(fn: () => void): AgentOpError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentOpError);
    expect((err as AgentOpError).code).toBe(ErrorCode.NOT_ALLOWED);
    return err as AgentOpError;
  }
  throw new Error('expected a refusal');
}

describe('judgeRunAs', () => {
  it('should let anything through without limits', () => {
    judgeRunAs(undefined, { name: 'root', uid: 0, gid: 0, groups: [0] }, 'disk', []);
  });

  it('should refuse uid 0, gid 0 or group 0 to a non-root rule', () => {
    const l = limits({ rules: [{ nonRoot: true }] });
    refusal(() => judgeRunAs(l, { name: 'toor', uid: 0, gid: 100, groups: [] }, '', [100]));
    refusal(() => judgeRunAs(l, { ...nobody, gid: 0 }, '', [0]));
    refusal(() => judgeRunAs(l, { ...nobody, groups: [65534, 0] }, '', [65534, 0]));
    judgeRunAs(l, nobody, '', [65534]);
  });

  it('should pass when any rule holds and name every rule when none does', () => {
    const l = limits({ rules: [{ nonRoot: true }, { users: ['root'] }] });
    judgeRunAs(l, { name: 'root', uid: 0, gid: 0, groups: [] }, '', [0]);
    const onlyDeploy = limits({ rules: [{ users: ['deploy'] }, { users: ['app'] }] });
    const e = refusal(() => judgeRunAs(onlyDeploy, nobody, '', [65534]));
    expect(e.message).toContain('deploy');
    expect(e.message).toContain('app');
  });

  it('should hold run_as_group to the user’s own groups unless any_group', () => {
    const l = limits({ rules: [] });
    const e = refusal(() => judgeRunAs(l, { ...nobody, gid: 6 }, 'disk', [65534]));
    expect(e.message).toContain('"disk"');
    judgeRunAs(l, { ...nobody, gid: 65534 }, 'nogroup', [65534]);
    judgeRunAs(limits({ anyGroup: true }), { ...nobody, gid: 6 }, 'disk', [65534]);
  });
});
