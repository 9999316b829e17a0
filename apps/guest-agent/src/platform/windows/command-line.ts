// How an argv becomes one Windows command line, and back. CreateProcess takes a single string;
// the program's C runtime (or CommandLineToArgvW) splits it again. The rules, from Microsoft's
// "Parsing C command-line arguments": whitespace separates arguments; "…" groups; a backslash is
// literal unless a run of them precedes a double quote, where 2n backslashes + " give n
// backslashes and a grouping quote, and 2n+1 give n backslashes and a literal quote. The agent
// builds the line itself and spawns with windowsVerbatimArguments, so what reaches the program
// is exactly what these tested functions say, whatever the runtime's own quoting does.
import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../../errors.js';

/** One argument quoted so that the MSVCRT rules give it back unchanged. */
export function quoteArg(arg: string): string {
  if (arg.length > 0 && !/[\s"]/.test(arg)) {
    return arg;
  }
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      backslashes++;
      continue;
    }
    if (ch === '"') {
      // The backslashes before a quote are doubled, and the quote escaped.
      out += '\\'.repeat(backslashes * 2 + 1) + '"';
    } else {
      out += '\\'.repeat(backslashes) + ch;
    }
    backslashes = 0;
  }
  // Before the closing quote, backslashes are doubled so that it stays a closing quote.
  return `${out}${'\\'.repeat(backslashes * 2)}"`;
}

/** An argv as one command line (the program's name is quoted by the same rules). */
export function commandLine(argv: readonly string[]): string {
  for (const arg of argv) {
    if (arg.includes('\0')) {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, 'an argument contains NUL');
    }
  }
  return argv.map(quoteArg).join(' ');
}

/**
 * The inverse: a command line split the way the MSVCRT (2008 and later) does, for tests and for
 * reading back what was recorded. The first argument follows the simpler program-name rule.
 */
export function parseCommandLine(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  // Program name: up to the next whitespace, or quoted up to the next quote; no escapes.
  let name = '';
  if (line[0] === '"') {
    const end = line.indexOf('"', 1);
    name = end === -1 ? line.slice(1) : line.slice(1, end);
    i = end === -1 ? line.length : end + 1;
  } else {
    while (i < line.length && !/[ \t]/.test(line[i]!)) {
      name += line[i++];
    }
  }
  args.push(name);
  for (;;) {
    while (i < line.length && /[ \t]/.test(line[i]!)) {
      i++;
    }
    if (i >= line.length) {
      return args;
    }
    let arg = '';
    let quoted = false;
    while (i < line.length && (quoted || !/[ \t]/.test(line[i]!))) {
      let backslashes = 0;
      while (line[i] === '\\') {
        backslashes++;
        i++;
      }
      if (line[i] === '"') {
        arg += '\\'.repeat(Math.floor(backslashes / 2));
        if (backslashes % 2 === 1) {
          arg += '"';
          i++;
        } else if (quoted && line[i + 1] === '"') {
          // "" inside quotes: a literal quote (post-2008 rule).
          arg += '"';
          i += 2;
        } else {
          quoted = !quoted;
          i++;
        }
      } else {
        arg += '\\'.repeat(backslashes);
        if (i < line.length && (quoted || !/[ \t]/.test(line[i]!))) {
          arg += line[i++];
        }
      }
    }
    args.push(arg);
  }
}

/**
 * `command` (a shell string) for cmd.exe: `/d` skips AutoRun, `/s` with the outer quotes makes
 * cmd take everything between the first and last quote verbatim, `/c` runs it and exits — the
 * line Node's `shell: true` builds. cmd reads one line, so line breaks are refused rather than
 * silently dropping what follows them.
 */
export function cmdCommandLine(cmdExe: string, command: string): string {
  if (/[\r\n\0]/.test(command)) {
    throw new AgentOpError(
      ErrorCode.INVALID_REQUEST,
      'command must be one line for cmd.exe (no CR, LF or NUL); send argv, or a script file',
    );
  }
  return `${quoteArg(cmdExe)} /d /s /c "${command}"`;
}
