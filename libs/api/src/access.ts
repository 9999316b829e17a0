// Authentication, the caller's permissions, and administration (users, keys, projects,
// role bindings).

/**
 * Fine-grained permissions; a role is a set of them, a binding grants a role globally or on one
 * project. The one list: libs/auth's policy and the console read it from here.
 */
export const PERMISSIONS = [
  'vm.read',
  'guest.exec',
  'guest.file.read',
  'guest.file.write',
  'guest.power',
  'guest.quiesce',
  'guest.time',
  'guest.password',
  // Replace the guest agent's executable (a self-update; it runs as root).
  'guest.agent.update',
  // Re-configure the guest's network (addresses, gateway, DNS, MTU; it runs as root).
  'guest.network.configure',
  // run_as_group may name a group the run-as user is not a member of.
  'guest.exec.any_group',
  // The audit trail and command history: who ran what, where, when, with what result.
  'audit.read',
  // The stored output of executions (redacted, but evidence that may still hold secrets).
  'audit.read_output',
  'admin',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const ROLES = ['admin', 'operator', 'viewer', 'auditor', 'output_auditor'] as const;
export type Role = (typeof ROLES)[number];

/** Limits a binding adds on top of its role (README: users, projects and roles). */
export interface BindingRestrictionsView {
  exec_non_root?: boolean;
  exec_users?: string[];
  file_paths?: string[];
  allow_root_operations?: Permission[];
}

/** One of the caller's role bindings in GET /api/auth/me. */
export interface MeBindingView {
  role: Role;
  /** A project id, or '*' for every project. */
  project: string;
  restrictions: BindingRestrictionsView;
  /** What the role grants (on `project`), before restrictions. */
  permissions: Permission[];
}

/** GET /api/auth/me */
export interface MeView {
  user_id: string;
  username: string;
  auth_method: 'jwt' | 'api_key';
  /** The API key's prefix when signed in with one, else null. */
  api_key: string | null;
  bindings: MeBindingView[];
  /** Each permission the caller holds: on 'all' projects, or on these (never empty). */
  permissions: Partial<Record<Permission, 'all' | string[]>>;
}

/** POST /api/auth/login and /api/auth/refresh */
export interface TokenPairView {
  access_token: string;
  token_type: 'Bearer';
  /** Seconds. */
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

/** POST /api/auth/password */
export interface PasswordChangedView {
  username: string;
  sessions_ended: true;
}

/** A user (never a password or key hash). */
export interface UserView {
  id: string;
  username: string;
  disabled: boolean;
  has_password: boolean;
  created_at: string;
}

export interface UserListView {
  users: UserView[];
}

/** An API key: its public prefix and life, never its secret. */
export interface ApiKeyView {
  id: string;
  user_id: string;
  /** lq_<prefix>_…: what the audit trail names. */
  prefix: string;
  name: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** POST /api/users/:user/api-keys: `token` is shown this once and never stored. */
export interface CreatedApiKeyView extends ApiKeyView {
  token: string;
}

export interface ApiKeyListView {
  api_keys: ApiKeyView[];
}

export interface ProjectView {
  id: string;
  name: string;
  created_at: string;
  vm_count: number;
}

export interface ProjectListView {
  projects: ProjectView[];
}

export interface RoleBindingView {
  id: string;
  user_id: string;
  /** '' in the answer of POST /api/role-bindings when given by id. */
  username: string;
  role: Role;
  /** null: every project. */
  project_id: string | null;
  restrictions: BindingRestrictionsView;
  created_at: string;
}

export interface RoleBindingListView {
  role_bindings: RoleBindingView[];
}
