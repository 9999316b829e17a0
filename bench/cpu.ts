// CPU accounting for the benches, from /proc (Linux; 10 ms ticks): what each tier of a run used,
// and what the whole machine did meanwhile (the machine is shared: the rest is other work).
import { readFileSync, readdirSync } from 'node:fs';
import type pg from 'pg';

/** CPU seconds a process has used (user + system); 0 once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds used by this process's children (agents, node daemons, control plane, NATS). */
export function childrenCpuSeconds(): number {
  let sum = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(fields[1]) === process.pid) {
        sum += (Number(fields[11]) + Number(fields[12])) / 100;
      }
    } catch {
      // gone
    }
  }
  return sum;
}

/** CPU seconds the whole machine has spent busy (every core, every process). */
export function machineCpuSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[1]! + f[2]! + f[3]! + f[6]! + f[7]! + f[8]!) / 100;
}

/** CPU seconds this process has used (user + system). */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * CPU seconds used so far by the PostgreSQL backends serving `client`'s database, per backend
 * pid (not counting `client`'s own), for pgCpuBetween.
 */
export async function pgBackendCpu(client: pg.Client): Promise<Map<number, number>> {
  const r = await client.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
  );
  return new Map(r.rows.map((row) => [row.pid, cpuSeconds(row.pid)]));
}

/**
 * The CPU seconds the backends of `after` used since `before`: a backend started meanwhile (a
 * pool growing under load) counts whole; one that ended meanwhile took its figure with it and
 * counts for nothing rather than less than nothing.
 */
export function pgCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let used = 0;
  for (const [pid, s] of after) {
    used += s - (before.get(pid) ?? 0);
  }
  return used;
}
