// Hands a command's environment to it through a helper that runs as root (setpriv) without the
// helper ever seeing it: setpriv starts with an empty environment, drops to the target user and
// execs the shell below, which reads the variables from fd 3, exports them and execs the command.
// Nothing goes through argv (visible to every user in /proc) or the disk. fd 3 is a socket, not a
// file, so the shell reads it with `read` (no open of /dev/fd/3).

import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../errors.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The script's own variables; an environment may not name them. */
const RESERVED_PREFIX = '__lq_';

/**
 * The shell script (for `sh -c SCRIPT lq-exec ARGV…`). Each line of fd 3 is `rNAME=value` (the
 * value as is) or `eNAME=value` (backslashes doubled and newlines as \n, decoded with printf %b;
 * the x keeps trailing newlines from the command substitution).
 */
export const HELPER_SCRIPT = [
  'while IFS= read -r __lq_l <&3; do',
  '  __lq_k=${__lq_l%%=*}; __lq_v=${__lq_l#*=}',
  '  case $__lq_k in',
  '    e*) __lq_k=${__lq_k#e}; __lq_v=$(printf \'%bx\' "$__lq_v"); __lq_v=${__lq_v%x} ;;',
  '    *) __lq_k=${__lq_k#r} ;;',
  '  esac',
  '  export "$__lq_k=$__lq_v"',
  'done',
  'unset __lq_l __lq_k __lq_v',
  'exec 3<&-',
  'exec "$@"',
].join('\n');

/** argv[0] of the helper shell: its own error messages start with it ("lq-exec: 1: exec: …"). */
export const HELPER_NAME = 'lq-exec';

/** The bytes to write to the helper's fd 3; refuses names a shell cannot export. */
export function renderHelperEnv(env: Record<string, string>): string {
  let out = '';
  for (const [name, value] of Object.entries(env)) {
    if (!NAME.test(name) || name.startsWith(RESERVED_PREFIX)) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `env ${JSON.stringify(name)} cannot be passed with include_supplementary_groups: names are letters, digits and _, not starting with a digit or ${RESERVED_PREFIX}`,
      );
    }
    if (value.includes('\n') || value.includes('\\')) {
      out += `e${name}=${value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`;
    } else {
      out += `r${name}=${value}\n`;
    }
  }
  return out;
}
