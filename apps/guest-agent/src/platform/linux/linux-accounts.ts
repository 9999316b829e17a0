// password.set on Linux: `chpasswd` (or `chpasswd -e` for a crypt hash) with `user:secret` on
// stdin. The secret never reaches a log, an argv or an error message.
import { ErrorCode, type SetUserPasswordRequest } from '@lq/proto';
import type { AgentConfig } from '../../config/agent-config.js';
import { AgentOpError, toAgentOpError } from '../../errors.js';
import { judgeRunAs } from '../../exec/run-as-limits.js';
import type { UserResolver } from '../../exec/user-resolver.js';
import { describeResult, runCommand, succeeded } from '../../system/run-command.js';
import type { AccountControl } from '../platform.js';

const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;
const CRYPT = /^\$[0-9a-z]+\$[^:\n]+$/;

export class LinuxAccounts implements AccountControl {
  constructor(
    private readonly config: AgentConfig,
    private readonly users: UserResolver,
  ) {}

  async setPassword(request: SetUserPasswordRequest): Promise<void> {
    const user = request.username;
    if (!USER.test(user)) {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, 'username is not a valid user name');
    }
    const secret = request.secret;
    if (secret.case === undefined) {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, 'give password or crypted_hash');
    }
    if (secret.case === 'password') {
      if (
        secret.value.length === 0 ||
        secret.value.length > 1024 ||
        /[\n\r\0]/.test(secret.value)
      ) {
        throw new AgentOpError(
          ErrorCode.INVALID_REQUEST,
          'password must be 1-1024 characters without line breaks or NUL',
        );
      }
    } else if (!CRYPT.test(secret.value) || secret.value.length > 1024) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        'crypted_hash must be a crypt(3) hash like $6$salt$hash',
      );
    }
    let entry;
    try {
      entry = await this.users.lookupUser(user);
    } catch (err) {
      throw toAgentOpError(err, `user ${user}`);
    }
    // The caller's limits judge the account as the guest resolves it (a "toor" with uid 0 is root).
    judgeRunAs(
      request.limits,
      { name: entry.name, uid: entry.uid, gid: entry.gid, groups: [] },
      '',
      [],
      'set the password of',
    );
    const argv =
      secret.case === 'cryptedHash'
        ? [...this.config.commands.chpasswd, '-e']
        : this.config.commands.chpasswd;
    const r = await runCommand(argv, { stdin: `${user}:${secret.value}\n`, timeoutMs: 30_000 });
    if (!succeeded(r)) {
      // chpasswd's message names the user, never the secret; still, keep only its first line.
      throw new AgentOpError(
        ErrorCode.EXEC_FAILED,
        `chpasswd failed for user ${user} (${describeResult(r)}): ${r.stderr.split('\n')[0]?.slice(0, 200) ?? ''}`,
      );
    }
  }
}
