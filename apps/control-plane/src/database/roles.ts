import type { DataSource, EntityManager } from 'typeorm';

/**
 * Least-privilege database roles (SECURITY.md: the audit trail). Migrations run as an owner
 * role (DATABASE_MIGRATION_URL); replicas run as another (DATABASE_URL) that owns nothing and
 * is granted, after every migration run, only what they need: SELECT and INSERT on the audit
 * tables (no UPDATE, DELETE, TRUNCATE, TRIGGER: it can neither change a row nor disable the
 * append-only triggers, which only an owner may), and SELECT, INSERT, UPDATE, DELETE on the
 * others.
 */

/** Tables replicas may only read and append to. */
export const APPEND_ONLY_TABLES = ['audit_events', 'audit_outputs', 'audit_checkpoints'];

/** Read by replicas, written only by migrations. */
const READ_ONLY_TABLES = ['migrations'];

/**
 * Grants `role` what replicas need on every table of the current schema (idempotent), in one
 * transaction: running replicas never see a table between its REVOKE and its GRANT.
 */
export function grantRuntimeRole(ds: DataSource, role: string): Promise<string[]> {
  return ds.transaction((m) => grantIn(m, role));
}

async function grantIn(ds: EntityManager, role: string): Promise<string[]> {
  const [names] = await ds.query<Array<{ r: string; schema: string }>>(
    'SELECT quote_ident($1) AS r, quote_ident(current_schema()) AS schema',
    [role],
  );
  const { r, schema } = names!;
  const tables = await ds.query<Array<{ name: string; quoted: string }>>(
    `SELECT tablename AS name, quote_ident(tablename) AS quoted FROM pg_tables
     WHERE schemaname = current_schema() ORDER BY tablename`,
  );
  await ds.query(`GRANT USAGE ON SCHEMA ${schema} TO ${r}`);
  const done: string[] = [];
  for (const t of tables) {
    const privileges = APPEND_ONLY_TABLES.includes(t.name)
      ? 'SELECT, INSERT'
      : READ_ONLY_TABLES.includes(t.name)
        ? 'SELECT'
        : 'SELECT, INSERT, UPDATE, DELETE';
    // Revoked first: a grant of an earlier version (or by hand) does not linger.
    await ds.query(`REVOKE ALL ON TABLE ${schema}.${t.quoted} FROM ${r}`);
    await ds.query(`GRANT ${privileges} ON TABLE ${schema}.${t.quoted} TO ${r}`);
    done.push(`${t.name}: ${privileges}`);
  }
  await ds.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${r}`);
  return done;
}

/**
 * What DATABASE_URL's role could do to the audit rows that it should not: a superuser, an
 * owner (or member of the owner's role) of an audit table (it could disable the triggers), or
 * UPDATE, DELETE or TRUNCATE granted. Empty when it is least-privileged.
 */
export async function leastPrivilegeProblems(ds: DataSource): Promise<string[]> {
  const [me] = await ds.query<Array<{ name: string; superuser: boolean }>>(
    'SELECT current_user AS name, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
  );
  if (me?.superuser) {
    return [`role ${me.name} is a superuser`];
  }
  const rows = await ds.query<
    Array<{ relname: string; owns: boolean; change: boolean; owner: string }>
  >(
    `SELECT c.relname, pg_has_role(c.relowner, 'MEMBER') AS owns,
            pg_get_userbyid(c.relowner) AS owner,
            has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE')
              OR has_table_privilege(c.oid, 'TRUNCATE') AS change
     FROM pg_class c
     WHERE c.relkind IN ('r', 'p') AND c.relname = ANY($1)
       AND c.relnamespace = current_schema()::regnamespace
     ORDER BY c.relname`,
    [APPEND_ONLY_TABLES],
  );
  const problems: string[] = [];
  for (const t of rows) {
    if (t.owns) {
      problems.push(
        `role ${me?.name} owns ${t.relname} (as ${t.owner}): it can disable its triggers`,
      );
    } else if (t.change) {
      problems.push(`role ${me?.name} may update, delete or truncate ${t.relname}`);
    }
  }
  return problems;
}

/** The user of a postgres:// URL (the role a migration job grants to). */
export function userOfUrl(url: string): string {
  const user = decodeURIComponent(new URL(url.replace(/^postgres(ql)?:/, 'http:')).username);
  if (!user) {
    throw new Error(
      'DATABASE_URL names no user: the replicas’ role cannot be granted its privileges',
    );
  }
  return user;
}
