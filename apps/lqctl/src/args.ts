// The command line: global options anywhere before `--`, one command (or group and subcommand),
// its options, and for exec and run the remote command after `--`. Pure functions only.
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

type OptionType = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
type Options = Record<string, OptionType>;

export const GLOBAL_OPTIONS: Options = {
  server: { type: 'string' },
  context: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  'no-headers': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
};

const EXEC_FIELDS: Options = {
  user: { type: 'string', short: 'u' },
  group: { type: 'string', short: 'g' },
  'supplementary-groups': { type: 'boolean' },
  timeout: { type: 'string' },
  cwd: { type: 'string' },
  env: { type: 'string', short: 'e', multiple: true },
  shell: { type: 'boolean' },
};

const HISTORY_FILTERS: Options = {
  vm: { type: 'string' },
  project: { type: 'string', short: 'p' },
  state: { type: 'string' },
  actor: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
};

export interface CommandSpec {
  /** "exec", "vms ls", … */
  name: string;
  options: Options;
  /** Positional arguments allowed (before `--`). */
  args: { min: number; max: number };
  /** Whether a remote command (after `--`, or trailing positionals) is taken. */
  remote: boolean;
}

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'login',
    options: { username: { type: 'string', short: 'u' }, 'api-key': { type: 'string' } },
    args: { min: 0, max: 0 },
    remote: false,
  },
  { name: 'logout', options: {}, args: { min: 0, max: 0 }, remote: false },
  { name: 'whoami', options: {}, args: { min: 0, max: 0 }, remote: false },
  {
    name: 'vms ls',
    options: { project: { type: 'string', short: 'p' }, selector: { type: 'string', short: 'l' } },
    args: { min: 0, max: 0 },
    remote: false,
  },
  { name: 'vm show', options: {}, args: { min: 1, max: 1 }, remote: false },
  {
    name: 'vm label',
    options: { replace: { type: 'boolean' } },
    args: { min: 1, max: 1000 },
    remote: false,
  },
  {
    name: 'exec',
    options: { ...EXEC_FIELDS, sync: { type: 'boolean' }, stdin: { type: 'boolean' } },
    args: { min: 1, max: 1 },
    remote: true,
  },
  {
    name: 'run',
    options: {
      ...EXEC_FIELDS,
      target: { type: 'string', short: 't' },
      vms: { type: 'string' },
      project: { type: 'string', short: 'p' },
      'max-concurrency': { type: 'string' },
      'max-errors': { type: 'string' },
      'show-output': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      all: { type: 'boolean' },
    },
    args: { min: 0, max: 0 },
    remote: true,
  },
  {
    name: 'exec ls',
    options: { ...HISTORY_FILTERS, run: { type: 'string' } },
    args: { min: 0, max: 0 },
    remote: false,
  },
  { name: 'exec show', options: {}, args: { min: 1, max: 1 }, remote: false },
  {
    name: 'exec logs',
    options: { follow: { type: 'boolean', short: 'f' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  { name: 'runs ls', options: HISTORY_FILTERS, args: { min: 0, max: 0 }, remote: false },
  {
    name: 'runs show',
    options: { 'show-output': { type: 'boolean' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  { name: 'audit show', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'users ls', options: {}, args: { min: 0, max: 0 }, remote: false },
  {
    name: 'users create',
    options: { 'password-stdin': { type: 'boolean' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  { name: 'users disable', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'users enable', options: {}, args: { min: 1, max: 1 }, remote: false },
  {
    name: 'keys ls',
    options: { user: { type: 'string' } },
    args: { min: 0, max: 0 },
    remote: false,
  },
  {
    name: 'keys create',
    options: {
      user: { type: 'string' },
      name: { type: 'string' },
      'expires-days': { type: 'string' },
    },
    args: { min: 0, max: 0 },
    remote: false,
  },
  { name: 'keys revoke', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'projects ls', options: {}, args: { min: 0, max: 0 }, remote: false },
  {
    name: 'projects create',
    options: { name: { type: 'string' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  { name: 'roles ls', options: {}, args: { min: 0, max: 0 }, remote: false },
  {
    name: 'roles bind',
    options: { project: { type: 'string', short: 'p' }, restrictions: { type: 'string' } },
    args: { min: 2, max: 2 },
    remote: false,
  },
  { name: 'roles unbind', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'completion', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'cp', options: { mode: { type: 'string' } }, args: { min: 2, max: 2 }, remote: false },
  {
    name: 'quiesce',
    options: {
      mount: { type: 'string', short: 'm', multiple: true },
      timeout: { type: 'string' },
      status: { type: 'boolean' },
    },
    args: { min: 1, max: 1 },
    remote: false,
  },
  { name: 'thaw', options: {}, args: { min: 1, max: 1 }, remote: false },
  {
    name: 'ls',
    options: { long: { type: 'boolean', short: 'l' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  {
    name: 'rm',
    options: { recursive: { type: 'boolean', short: 'r' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  {
    name: 'mkdir',
    options: { parents: { type: 'boolean', short: 'p' }, mode: { type: 'string' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  {
    name: 'mv',
    options: { force: { type: 'boolean', short: 'f' } },
    args: { min: 2, max: 2 },
    remote: false,
  },
  {
    name: 'audit ls',
    options: {
      actor: { type: 'string' },
      vm: { type: 'string' },
      project: { type: 'string', short: 'p' },
      operation: { type: 'string' },
      kind: { type: 'string' },
      outcome: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
      executions: { type: 'boolean' },
      format: { type: 'string' },
    },
    args: { min: 0, max: 0 },
    remote: false,
  },
  { name: 'agent releases', options: {}, args: { min: 0, max: 0 }, remote: false },
  { name: 'agent versions', options: {}, args: { min: 0, max: 0 }, remote: false },
  {
    name: 'agent update',
    options: { version: { type: 'string' }, 'allow-downgrade': { type: 'boolean' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
  {
    name: 'agent rollout',
    options: {
      version: { type: 'string' },
      'allow-downgrade': { type: 'boolean' },
      target: { type: 'string', short: 't' },
      vms: { type: 'string' },
      project: { type: 'string', short: 'p' },
      canary: { type: 'string' },
      'max-concurrency': { type: 'string' },
      'max-errors': { type: 'string' },
    },
    args: { min: 0, max: 0 },
    remote: false,
  },
  { name: 'agent release', options: {}, args: { min: 2, max: 2 }, remote: false },
  { name: 'audit export', options: {}, args: { min: 0, max: 1 }, remote: false },
  { name: 'config get-contexts', options: {}, args: { min: 0, max: 0 }, remote: false },
  { name: 'config current-context', options: {}, args: { min: 0, max: 0 }, remote: false },
  { name: 'config use-context', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'config set-context', options: {}, args: { min: 1, max: 1 }, remote: false },
  { name: 'config delete-context', options: {}, args: { min: 1, max: 1 }, remote: false },
  {
    name: 'audit verify',
    options: { 'public-key': { type: 'string' } },
    args: { min: 1, max: 1 },
    remote: false,
  },
];

/** Groups whose first word needs a subcommand, and the one used when it is left out. */
const GROUPS: Record<string, { default?: string; aliases: Record<string, string> }> = {
  vms: { default: 'ls', aliases: { list: 'ls' } },
  vm: { aliases: { get: 'show', describe: 'show' } },
  audit: { default: 'ls', aliases: { list: 'ls' } },
  agent: { default: 'versions', aliases: {} },
  runs: { default: 'ls', aliases: { list: 'ls', get: 'show', describe: 'show' } },
  users: { default: 'ls', aliases: { list: 'ls', add: 'create' } },
  keys: { default: 'ls', aliases: { list: 'ls', add: 'create', delete: 'revoke', rm: 'revoke' } },
  projects: { default: 'ls', aliases: { list: 'ls', add: 'create' } },
  roles: { default: 'ls', aliases: { list: 'ls', delete: 'unbind', rm: 'unbind' } },
  config: { default: 'get-contexts', aliases: { 'get-context': 'get-contexts' } },
};

/**
 * `exec` runs a command on a VM, but `exec ls|show|logs` (no `--` on the line) read the
 * history: a VM named like a subcommand is reached with `lqctl exec ls -- CMD`.
 */
const EXEC_SUBCOMMANDS = new Set(['ls', 'list', 'show', 'logs']);

export type ParsedCommandLine =
  | { kind: 'help'; topic?: string }
  | { kind: 'version' }
  | { kind: 'command'; command: ParsedCommand };

export interface ParsedCommand {
  name: string;
  /** Option values by long name (strings, booleans, string lists for repeatable options). */
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** The remote command (exec, run): the words after `--`, else the trailing positionals. */
  remote: string[];
  /** Whether the remote command came after an explicit `--`. */
  dashdash: boolean;
}

const STRING_OPTIONS = new Set(
  [GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options)].flatMap((o) =>
    Object.entries(o).flatMap(([name, spec]) =>
      spec.type === 'string' ? [`--${name}`, ...(spec.short ? [`-${spec.short}`] : [])] : [],
    ),
  ),
);

/** Indexes of the words that are not options or option values (before `--`). */
function wordIndexes(args: string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('-') && a !== '-') {
      if (STRING_OPTIONS.has(a)) {
        i++; // its value
      }
      continue;
    }
    out.push(i);
  }
  return out;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
}

/** " (did you mean X?)" for the closest of `known` to `word`, or "" when none is close. */
export function didYouMean(word: string, known: readonly string[]): string {
  const bare = word.replace(/^-+/, '');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const kb = k.replace(/^-+/, '');
    const dist = kb.startsWith(bare) && bare.length >= 2 ? 0.5 : editDistance(bare, kb);
    if (dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  const limit = Math.max(1, Math.min(2, Math.floor(bare.length / 3)));
  return best !== undefined && bestDistance <= limit ? ` (did you mean ${best}?)` : '';
}

/** The long spellings of the options (a one-letter one is too short to guess from). */
function optionNames(options: Options): string[] {
  return Object.keys(options).map((name) => `--${name}`);
}

/** Node's parseArgs errors in lqctl's own words (with "did you mean" for a misspelt option). */
function parseError(
  err: unknown,
  topic: string | undefined,
  options: Options,
  args: readonly string[],
): never {
  const code = errorCode(err);
  if (!code.startsWith('ERR_PARSE_ARGS')) {
    throw err;
  }
  const message = (err as Error).message;
  // "Option '-p, --project <value>' argument missing": name the long form.
  const option = /'(?:-\w, )?(-[^' ]+)/.exec(message)?.[1] ?? 'option';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    throw new UsageError(
      `unknown option ${option}${didYouMean(option, optionNames(options))}`,
      topic,
    );
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/does not take an argument/.test(message)) {
      throw new UsageError(`${option} takes no value`, topic);
    }
    const at = args.findIndex((a) => a === option || a === `-${option.replace(/^-+/, '')}`);
    const next = at >= 0 ? args[at + 1] : undefined;
    if (next !== undefined && /^-\d/.test(next)) {
      throw new UsageError(`${option} must not be negative (got ${next})`, topic);
    }
    if (next !== undefined && /ambiguous/.test(message)) {
      throw new UsageError(
        `${option} needs a value, and ${next} looks like an option (write ${option}=${next} if it is the value)`,
        topic,
      );
    }
    throw new UsageError(`${option} needs a value`, topic);
  }
  throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, ''), topic);
}

/** Parses lqctl's arguments (process.argv without node and the script). */
export function parseCommandLine(argv: readonly string[]): ParsedCommandLine {
  const dd = argv.indexOf('--');
  const before = dd >= 0 ? argv.slice(0, dd) : [...argv];
  const after = dd >= 0 ? argv.slice(dd + 1) : [];
  const words = wordIndexes(before);
  const first = words[0] === undefined ? undefined : before[words[0]];

  if (first === undefined || first === 'help') {
    const topicWords = words.slice(1).map((i) => before[i]!);
    if (first === undefined) {
      let g: { values: Record<string, unknown> };
      try {
        g = parseArgs({ args: before, options: GLOBAL_OPTIONS, allowPositionals: false });
      } catch (err) {
        parseError(err, undefined, GLOBAL_OPTIONS, before);
      }
      if (g.values.version) {
        return { kind: 'version' };
      }
      return { kind: 'help' };
    }
    return { kind: 'help', topic: topicWords.length > 0 ? topicWords.join(' ') : undefined };
  }

  let name = first;
  const consumed = [words[0]!];
  const second = words[1] === undefined ? undefined : before[words[1]];
  if (first === 'exec' && dd < 0 && second !== undefined && EXEC_SUBCOMMANDS.has(second)) {
    name = `exec ${second === 'list' ? 'ls' : second}`;
    consumed.push(words[1]!);
  }
  const group = name === first ? GROUPS[first] : undefined;
  if (group) {
    const subIndex = words[1];
    const sub = subIndex === undefined ? undefined : before[subIndex];
    const resolved = sub === undefined ? undefined : (group.aliases[sub] ?? sub);
    if (resolved !== undefined && COMMANDS.some((c) => c.name === `${first} ${resolved}`)) {
      name = `${first} ${resolved}`;
      consumed.push(subIndex!);
    } else if (group.default && sub === undefined) {
      name = `${first} ${group.default}`;
    } else if (before.includes('--help') || before.includes('-h')) {
      return { kind: 'help', topic: first };
    } else {
      const subs = COMMANDS.filter((c) => c.name.startsWith(`${first} `)).map(
        (c) => c.name.split(' ')[1],
      );
      throw new UsageError(
        sub === undefined
          ? `${first} needs a subcommand: ${subs.join(', ')}`
          : `unknown subcommand ${first} ${sub}${didYouMean(sub, subs as string[]) || ` (${subs.join(', ')})`}`,
      );
    }
  }
  const spec = COMMANDS.find((c) => c.name === name);
  if (!spec) {
    const verbs = [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]!)), 'help'];
    throw new UsageError(`unknown command ${first}${didYouMean(first, verbs)}`);
  }
  const rest = before.filter((_, i) => !consumed.includes(i));
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...spec.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    if (spec.remote && dd < 0) {
      if (errorCode(err) === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
        const option = /'([^']+)'/.exec((err as Error).message)?.[1] ?? 'option';
        const close = option.startsWith('--')
          ? didYouMean(option, optionNames({ ...GLOBAL_OPTIONS, ...spec.options }))
          : '';
        throw new UsageError(
          close
            ? `unknown option ${option}${close}`
            : `unknown option ${option}: put the remote command after --, e.g. lqctl ${name === 'exec' ? 'exec vm-1' : 'run --vms vm-1'} -- ls -la`,
          name,
        );
      }
    }
    parseError(err, name, { ...GLOBAL_OPTIONS, ...spec.options }, rest);
  }
  const values = parsed.values as ParsedCommand['values'];
  if (values.help) {
    return { kind: 'help', topic: name };
  }
  let positionals = parsed.positionals;
  let remote = after;
  if (spec.remote && dd < 0) {
    remote = positionals.slice(spec.args.max);
    positionals = positionals.slice(0, spec.args.max);
  }
  if (positionals.length < spec.args.min) {
    throw new UsageError(`${name}: missing argument${spec.args.min > 1 ? 's' : ''}`, name);
  }
  if (positionals.length > spec.args.max) {
    throw new UsageError(`${name}: unexpected argument ${positionals[spec.args.max]}`, name);
  }
  if (!spec.remote && dd >= 0) {
    throw new UsageError(`${name} takes no command after --`, name);
  }
  return {
    kind: 'command',
    command: { name, values, positionals, remote, dashdash: dd >= 0 },
  };
}

/** Option accessors with the types the command line guarantees. */
export function str(c: ParsedCommand, name: string): string | undefined {
  const v = c.values[name];
  return typeof v === 'string' ? v : undefined;
}
export function bool(c: ParsedCommand, name: string): boolean {
  return c.values[name] === true;
}
export function list(c: ParsedCommand, name: string): string[] {
  const v = c.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * A duration in milliseconds: "90" (in `bareUnit`), "90s", "5m", "1h30m", "2d", "250ms".
 * Throws UsageError naming `what` on anything else.
 */
export function parseDuration(text: string, what: string, bareUnit: 's' | 'ms' = 's'): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) {
    return Number(t) * UNIT_MS[bareUnit]!;
  }
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
  let total = 0;
  let at = 0;
  while (at < t.length) {
    part.lastIndex = at;
    const m = part.exec(t);
    if (!m) {
      throw new UsageError(`${what} must be a duration like 30s, 5m, 1h30m or 2d (got ${text})`);
    }
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = part.lastIndex;
  }
  if (at === 0) {
    throw new UsageError(`${what} must be a duration like 30s, 5m, 1h30m or 2d (got ${text})`);
  }
  return total;
}

/** A point in time: a duration ago ("1h", "30m", "2d") or an ISO 8601 date/time. */
export function parseTime(text: string, what: string, now: Date = new Date()): Date {
  const t = text.trim();
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isNaN(ms)) {
      throw new UsageError(`${what}: ${text} is not a valid ISO 8601 time`);
    }
    return new Date(ms);
  }
  if (/^\d+$/.test(t)) {
    throw new UsageError(`${what} needs a unit (${t}m, ${t}h, ${t}d) or an ISO 8601 time`);
  }
  return new Date(now.getTime() - parseDuration(t, what));
}

/**
 * A command timeout in whole seconds, 1 s..24 h (the most any server may allow; the server's own
 * maximum, LQ_GUEST_TIMEOUT_MAX_SECONDS, 1 h by default, is checked there and reported as
 * "--timeout 2h exceeds the server maximum 1h").
 */
export function parseTimeoutSeconds(text: string): number {
  const s = Math.ceil(parseDuration(text, '--timeout') / 1000);
  if (s < 1 || s > 86_400) {
    throw new UsageError(`--timeout must be between 1s and 24h (got ${text})`);
  }
  return s;
}

/** "10" or "10%" for max_concurrency / max_errors (a number goes as a number). */
export function parseAmount(text: string, what: string, min: number): number | string {
  const t = text.trim();
  const m = /^(\d+)(%?)$/.exec(t);
  if (!m || Number(m[1]) < min || (m[2] === '%' && Number(m[1]) > 100)) {
    throw new UsageError(
      `${what} must be a whole number${min > 0 ? ` ≥ ${min}` : ''} or a percentage like 10% (got ${text})`,
    );
  }
  return m[2] === '%' ? t : Number(m[1]);
}

/** KEY=VALUE (the value may hold "="); throws naming `what`. */
export function parseKeyValue(text: string, what: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) {
    throw new UsageError(`${what} must be KEY=VALUE (got ${text})`);
  }
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** "vm-1:/etc/hosts" → { vm, path }; anything else (a local path) → undefined. */
export function parseRemotePath(text: string): { vm: string; path: string } | undefined {
  const m = /^([A-Za-z0-9_-]{1,128}):(\/.*)$/.exec(text);
  return m ? { vm: m[1]!, path: m[2]! } : undefined;
}

/** Octal permission bits like 0644 or 755. */
export function parseMode(text: string): string {
  if (!/^0?[0-7]{3,4}$/.test(text)) {
    throw new UsageError(`--mode must be octal permission bits like 0644 (got ${text})`);
  }
  return text;
}
