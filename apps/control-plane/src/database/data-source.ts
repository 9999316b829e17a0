import { DataSource, type DataSourceOptions } from 'typeorm';
import type { DatabaseTls } from '../config/env.schema.js';
import { CreateInventory1764201600000 } from './migrations/1764201600000-CreateInventory.js';
import { CreateAccessAndAudit1764374400000 } from './migrations/1764374400000-CreateAccessAndAudit.js';
import { CreateExecutions1764460800000 } from './migrations/1764460800000-CreateExecutions.js';
import { CreateRuns1764464400000 } from './migrations/1764464400000-CreateRuns.js';
import { AddVmName1764633600000 } from './migrations/1764633600000-AddVmName.js';
import {
  OutputAuditorRole1764897318100,
  SessionsAndSignInLimits1764806400000,
} from '@lq/auth/migrations';
import { AuditOneOutcomePerRequest1764897318000 } from './migrations/1764897318000-AuditOneOutcomePerRequest.js';
import { ExecutionOutputRedactions1764897318200 } from './migrations/1764897318200-ExecutionOutputRedactions.js';
import { AddAgentLifecycle1764907000000 } from './migrations/1764907000000-AddAgentLifecycle.js';
import { CreateAuditCheckpoints1764900000000 } from './migrations/1764900000000-CreateAuditCheckpoints.js';
import { AddHistoryIndexes1764900000100 } from './migrations/1764900000100-AddHistoryIndexes.js';
import { AddExecutionOutputCap1764979200018 } from './migrations/1764979200018-AddExecutionOutputCap.js';
import { CreateTelemetryHistory1764979200120 } from './migrations/1764979200120-CreateTelemetryHistory.js';
import { AddAgentRolloutLease1765000000000 } from './migrations/1765000000000-AddAgentRolloutLease.js';
import { AddExecutionLeases1765000018000 } from './migrations/1765000018000-AddExecutionLeases.js';
import { AddCommandHistoryIndexes1765000019000 } from './migrations/1765000019000-AddCommandHistoryIndexes.js';
import { AddFailureIndexes1765000020000 } from './migrations/1765000020000-AddFailureIndexes.js';
import { AddVmStateSeq1765000021000 } from './migrations/1765000021000-AddVmStateSeq.js';

// Listed explicitly: TypeORM's glob loading uses import(), which finds nothing under jest.
// A library's tables are migrated by the migrations beside its code (libs/auth/src/migrations);
// the first ones, landed together, stay here.
export const MIGRATIONS = [
  CreateInventory1764201600000,
  CreateAccessAndAudit1764374400000,
  CreateExecutions1764460800000,
  CreateRuns1764464400000,
  AddVmName1764633600000,
  SessionsAndSignInLimits1764806400000,
  AuditOneOutcomePerRequest1764897318000,
  OutputAuditorRole1764897318100,
  ExecutionOutputRedactions1764897318200,
  CreateAuditCheckpoints1764900000000,
  AddHistoryIndexes1764900000100,
  AddAgentLifecycle1764907000000,
  AddExecutionOutputCap1764979200018,
  CreateTelemetryHistory1764979200120,
  AddAgentRolloutLease1765000000000,
  AddExecutionLeases1765000018000,
  AddCommandHistoryIndexes1765000019000,
  AddFailureIndexes1765000020000,
  AddVmStateSeq1765000021000,
];

/** Built when asked (not at import), so DATABASE_URL is read when the app starts. */
/** Connections per replica and how long a query waits for one (LQ_DATABASE_POOL_*). */
export interface DatabasePool {
  max: number;
  waitMs: number;
}

const DEFAULT_POOL: DatabasePool = { max: 20, waitMs: 10_000 };

export function dataSourceOptions(
  url: string,
  tls?: DatabaseTls,
  pool: DatabasePool = DEFAULT_POOL,
): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    // DATABASE_SSL_*; undefined leaves it to the URL's sslmode.
    ...(tls === undefined ? {} : { ssl: tls }),
    // Repositories speak SQL (only *.repository.ts files do); no entity classes.
    entities: [],
    migrations: MIGRATIONS,
    synchronize: false,
    migrationsRun: false,
    // A query waits its turn for a connection up to waitMs (callers bound how much work
    // queues: fleet-run starts, the audit writer's one batch at a time), then fails rather than
    // queueing forever while the database is away.
    extra: { connectionTimeoutMillis: pool.waitMs, max: pool.max, statement_timeout: 30_000 },
  };
}

export function createDataSource(url: string, tls?: DatabaseTls, pool?: DatabasePool): DataSource {
  return new DataSource(dataSourceOptions(url, tls, pool));
}

// Replicas (and a migration job) starting together take turns: one applies, the others then
// find nothing pending.
const MIGRATION_LOCK = 0x4c51_4d47; // "LQMG"

/**
 * Applies pending migrations holding a session advisory lock, then runs `after` (the grants to
 * the replicas' role) still holding it; returns what was applied.
 */
export async function runMigrationsLocked(ds: DataSource, after?: () => Promise<unknown>) {
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    await qr.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      const applied = await ds.runMigrations({ transaction: 'each' });
      await after?.();
      return applied;
    } finally {
      await qr.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    await qr.release();
  }
}
