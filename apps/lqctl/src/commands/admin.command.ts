// Administration that was curl-only: users, API keys, projects and role bindings (`lqctl users`,
// `keys`, `projects`, `roles`), with the listings' -o formats. The server decides who may do
// what (global admin, project admin, or a user's own keys).
import { bool, str } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { outputFormat, printList, printOne, type ListSpec } from '../output/listing.js';
import { writeTo } from '../output/stream.js';
import { formatDetails } from '../output/table.js';
import { note, seg, type Command, type Context } from './context.js';
import type {
  ApiKeyListView,
  ApiKeyView,
  CreatedApiKeyView,
  MeView,
  ProjectListView,
  ProjectView,
  RoleBindingListView,
  RoleBindingView,
  UserListView,
  UserView,
} from '@lq/api';

function when(iso: string | null | undefined): string | undefined {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : undefined;
}

const USERS: ListSpec<UserView> = {
  name: (u) => u.username,
  columns: [
    { header: 'USERNAME', cell: (u) => u.username },
    { header: 'ID', cell: (u) => u.id, wide: true },
    { header: 'PASSWORD', cell: (u) => (u.has_password ? 'yes' : 'no') },
    { header: 'DISABLED', cell: (u) => (u.disabled ? 'yes' : 'no') },
    { header: 'CREATED (UTC)', cell: (u) => when(u.created_at) },
  ],
};

const KEYS: ListSpec<ApiKeyView> = {
  name: (k) => k.id,
  columns: [
    { header: 'ID', cell: (k) => k.id },
    { header: 'PREFIX', cell: (k) => k.prefix },
    { header: 'NAME', cell: (k) => k.name, max: 30 },
    { header: 'CREATED (UTC)', cell: (k) => when(k.created_at) },
    { header: 'EXPIRES (UTC)', cell: (k) => when(k.expires_at) },
    { header: 'LAST USED (UTC)', cell: (k) => when(k.last_used_at), wide: true },
    { header: 'REVOKED (UTC)', cell: (k) => when(k.revoked_at) },
  ],
};

const PROJECTS: ListSpec<ProjectView> = {
  name: (p) => p.id,
  columns: [
    { header: 'ID', cell: (p) => p.id },
    { header: 'NAME', cell: (p) => p.name, max: 40 },
    { header: 'VMS', cell: (p) => p.vm_count, align: 'right' },
    { header: 'CREATED (UTC)', cell: (p) => when(p.created_at) },
  ],
};

function restrictionsText(b: RoleBindingView): string | undefined {
  const r = b.restrictions;
  const parts = [
    r.exec_non_root ? 'non-root' : undefined,
    r.exec_users?.length ? `users=${r.exec_users.join('|')}` : undefined,
    r.file_paths?.length ? `paths=${r.file_paths.join('|')}` : undefined,
    r.allow_root_operations?.length ? `root-ops=${r.allow_root_operations.join('|')}` : undefined,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(' ') : undefined;
}

const BINDINGS: ListSpec<RoleBindingView> = {
  name: (b) => b.id,
  columns: [
    { header: 'ID', cell: (b) => b.id },
    { header: 'USER', cell: (b) => b.username },
    { header: 'ROLE', cell: (b) => b.role },
    { header: 'PROJECT', cell: (b) => b.project_id ?? '(all)' },
    { header: 'RESTRICTIONS', cell: (b) => restrictionsText(b), max: 50 },
    { header: 'CREATED (UTC)', cell: (b) => when(b.created_at), wide: true },
  ],
};

export const usersLsCommand: Command = async (ctx, cmd) => {
  outputFormat(cmd);
  const { users } = await ctx.client.json<UserListView>('GET', '/api/users');
  await printList(ctx.stdout, cmd, users, USERS);
  return Exit.OK;
};

async function readPassword(ctx: Context): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of ctx.stdin as AsyncIterable<Buffer | string>) {
    parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  }
  const line = Buffer.concat(parts).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (line === '') {
    throw new UsageError('--password-stdin: stdin holds no password');
  }
  return line;
}

/** `lqctl users create NAME [--password-stdin]`: without a password, the user signs in with keys. */
export const usersCreateCommand: Command = async (ctx, cmd) => {
  const username = cmd.positionals[0]!;
  const password = bool(cmd, 'password-stdin') ? await readPassword(ctx) : undefined;
  const user = await ctx.client.json<UserView>('POST', '/api/users', {
    json: { username, password },
  });
  await printOne(
    ctx.stdout,
    cmd,
    user,
    (u) => u.username,
    () => formatDetails(userPairs(user)),
  );
  return Exit.OK;
};

function userPairs(u: UserView): Array<[string, string | undefined]> {
  return [
    ['username', u.username],
    ['id', u.id],
    ['password', u.has_password ? 'yes' : 'no'],
    ['disabled', u.disabled ? 'yes' : 'no'],
    ['created', when(u.created_at)],
  ];
}

/** `lqctl users disable|enable NAME`. */
export function usersDisableCommand(disabled: boolean): Command {
  return async (ctx, cmd) => {
    const user = await ctx.client.json<UserView>(
      'PATCH',
      `/api/users/${seg(cmd.positionals[0]!)}`,
      { json: { disabled } },
    );
    await printOne(
      ctx.stdout,
      cmd,
      user,
      (u) => u.username,
      () => formatDetails(userPairs(user)),
    );
    return Exit.OK;
  };
}

/** The user whose keys to list or create: --user, or the caller. */
async function keyOwner(ctx: Context, user: string | undefined): Promise<string> {
  return user ?? (await ctx.client.json<MeView>('GET', '/api/auth/me')).username;
}

export const keysLsCommand: Command = async (ctx, cmd) => {
  outputFormat(cmd);
  const user = await keyOwner(ctx, str(cmd, 'user'));
  const { api_keys } = await ctx.client.json<ApiKeyListView>(
    'GET',
    `/api/users/${seg(user)}/api-keys`,
  );
  await printList(ctx.stdout, cmd, api_keys, KEYS);
  return Exit.OK;
};

/** `lqctl keys create [--user U] [--name N] [--expires-days D]`: prints the key once. */
export const keysCreateCommand: Command = async (ctx, cmd) => {
  const user = await keyOwner(ctx, str(cmd, 'user'));
  const days = str(cmd, 'expires-days');
  if (days !== undefined && !/^[1-9]\d{0,3}$/.test(days)) {
    throw new UsageError(`--expires-days must be a whole number of days from 1 (got ${days})`);
  }
  const key = await ctx.client.json<CreatedApiKeyView>('POST', `/api/users/${seg(user)}/api-keys`, {
    json: {
      name: str(cmd, 'name'),
      expires_in_days: days === undefined ? undefined : Number(days),
    },
  });
  const f = outputFormat(cmd);
  if (f === 'table' || f === 'wide') {
    await writeTo(ctx.stdout, `${key.token}\n`);
    note(ctx, `API key ${key.id} (${key.prefix}) for ${user}: shown once, store it now`);
  } else {
    await printOne(
      ctx.stdout,
      cmd,
      key,
      (k) => k.id,
      () => '',
    );
  }
  return Exit.OK;
};

export const keysRevokeCommand: Command = async (ctx, cmd) => {
  const key = await ctx.client.json<ApiKeyView>(
    'DELETE',
    `/api/api-keys/${seg(cmd.positionals[0]!)}`,
  );
  await printOne(
    ctx.stdout,
    cmd,
    key,
    (k) => k.id,
    () => `revoked ${key.id} (${key.prefix})\n`,
  );
  return Exit.OK;
};

export const projectsLsCommand: Command = async (ctx, cmd) => {
  outputFormat(cmd);
  const { projects } = await ctx.client.json<ProjectListView>('GET', '/api/projects');
  await printList(ctx.stdout, cmd, projects, PROJECTS);
  return Exit.OK;
};

export const projectsCreateCommand: Command = async (ctx, cmd) => {
  const project = await ctx.client.json<ProjectView>('POST', '/api/projects', {
    json: { id: cmd.positionals[0]!, name: str(cmd, 'name') },
  });
  await printOne(
    ctx.stdout,
    cmd,
    project,
    (p) => p.id,
    () => `project ${project.id} created\n`,
  );
  return Exit.OK;
};

export const rolesLsCommand: Command = async (ctx, cmd) => {
  outputFormat(cmd);
  const { role_bindings } = await ctx.client.json<RoleBindingListView>('GET', '/api/role-bindings');
  await printList(ctx.stdout, cmd, role_bindings, BINDINGS);
  return Exit.OK;
};

/** `lqctl roles bind USER ROLE [--project P] [--restrictions JSON]`. */
export const rolesBindCommand: Command = async (ctx, cmd) => {
  const [user, role] = cmd.positionals as [string, string];
  const text = str(cmd, 'restrictions');
  let restrictions: unknown;
  if (text !== undefined) {
    try {
      restrictions = JSON.parse(text);
    } catch {
      throw new UsageError(`--restrictions must be JSON like '{"exec_non_root": true}'`);
    }
  }
  const b = await ctx.client.json<RoleBindingView>('POST', '/api/role-bindings', {
    json: { user, role, project: str(cmd, 'project'), restrictions },
  });
  await printOne(
    ctx.stdout,
    cmd,
    b,
    (x) => x.id,
    () => `bound ${b.username} as ${b.role} on ${b.project_id ?? 'every project'} (${b.id})\n`,
  );
  return Exit.OK;
};

export const rolesUnbindCommand: Command = async (ctx, cmd) => {
  await ctx.client.request('DELETE', `/api/role-bindings/${seg(cmd.positionals[0]!)}`);
  note(ctx, `removed role binding ${cmd.positionals[0]!}`);
  return Exit.OK;
};
