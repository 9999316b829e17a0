import type { AuditFilter } from './audit-record.js';

/** Builds a WHERE clause for the auditors' filters; every filter has an index behind it. */
export function filterSql(f: AuditFilter, a: string, params: unknown[], statusOf = a): string[] {
  const where: string[] = [];
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (f.actor !== undefined) {
    where.push(`${a}.actor = ${p(f.actor)}`);
  }
  if (f.vmId !== undefined) {
    where.push(`${a}.vm_id = ${p(f.vmId)}`);
  }
  if (f.projectId !== undefined) {
    where.push(`${a}.project_id = ${p(f.projectId)}`);
  }
  if (f.projects !== undefined) {
    where.push(`${a}.project_id = ANY(${p(f.projects)}::text[])`);
  }
  if (f.operation !== undefined) {
    where.push(`${a}.operation = ${p(f.operation)}`);
  }
  if (f.kind !== undefined) {
    where.push(`${a}.kind = ${p(f.kind)}`);
  }
  if (f.outcome !== undefined) {
    where.push(
      f.outcome === 'error' ? `${statusOf}.status <> 'ok'` : `${statusOf}.status = ${p(f.outcome)}`,
    );
  }
  // Rows get their time under the chain lock, never going back (chainRows: the later of now and
  // the head's time), so a time range is a range of sequence numbers: found once on the time
  // index, it narrows every other index. It is given as that range alone: with the time
  // condition beside it, the planner counted the same narrowing twice, expected a handful of
  // rows, and read all of a user's executions in the window to sort them (bench:audit, 10 M
  // rows: 57 ms) where an index scan newest first stops at the page's limit (8 ms).
  if (f.from !== undefined) {
    const t = p(f.from);
    where.push(
      `${a}.seq >= COALESCE((SELECT seq FROM audit_events WHERE at >= ${t} ORDER BY at, seq LIMIT 1), 9223372036854775807)`,
    );
  }
  if (f.to !== undefined) {
    const t = p(f.to);
    where.push(
      `${a}.seq <= COALESCE((SELECT seq FROM audit_events WHERE at <= ${t} ORDER BY at DESC, seq DESC LIMIT 1), 0)`,
    );
  }
  if (f.beforeSeq !== undefined) {
    where.push(`${a}.seq < ${p(f.beforeSeq)}`);
  }
  return where;
}
