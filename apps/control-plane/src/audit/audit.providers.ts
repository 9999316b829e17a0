import { tmpdir } from 'node:os';
import { relative, resolve } from 'node:path';
import { Logger, type Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import {
  AuditRepository,
  AuditService,
  AuditSpool,
  AuditWriter,
  CheckpointRepository,
  OutputRedactor,
} from '@lq/audit';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';

/** Whether `dir` lies in the OS temp directory (a tmpfs, or emptied at boot or restart). */
export function spoolIsTemporary(dir: string, temp = tmpdir()): boolean {
  const rel = relative(resolve(temp), resolve(dir));
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
}

/** libs/audit wired into Nest: one repository, one ordered writer, one service per process. */
export const AUDIT_PROVIDERS: Provider[] = [
  {
    provide: AuditRepository,
    inject: [DataSource],
    useFactory: (ds: DataSource) => new AuditRepository(ds),
  },
  {
    provide: CheckpointRepository,
    inject: [DataSource],
    useFactory: (ds: DataSource) => new CheckpointRepository(ds),
  },
  {
    provide: AuditWriter,
    inject: [AuditRepository, CONTROL_PLANE_CONFIG],
    useFactory: (repo: AuditRepository, config: ControlPlaneConfig) => {
      const log = new Logger('audit');
      if (config.audit.spoolMaxBytes > 0 && spoolIsTemporary(config.audit.spoolDir)) {
        log.warn(
          `the audit spool ${config.audit.spoolDir} is under ${tmpdir()}: outcome rows spooled while PostgreSQL is down are lost if this machine or container restarts before it is back; set LQ_AUDIT_SPOOL_DIR to a persistent directory of this replica's own`,
        );
      }
      const spool =
        config.audit.spoolMaxBytes > 0
          ? new AuditSpool(config.audit.spoolDir, config.audit.spoolMaxBytes)
          : undefined;
      return new AuditWriter(
        (records) => repo.append(records),
        {
          maxBatch: config.audit.batchMax,
          writeTimeoutMs: config.audit.writeTimeoutMs,
          maxPending: config.audit.pendingMax,
          retryDelayMs: config.audit.retryMs,
          spool,
        },
        { warn: (m) => log.warn(m), error: (m) => log.error(m) },
      );
    },
  },
  {
    // LQ_OUTPUT_REDACT_*: one set of patterns for stored and streamed output.
    provide: OutputRedactor,
    inject: [CONTROL_PLANE_CONFIG],
    useFactory: (config: ControlPlaneConfig) =>
      new OutputRedactor({
        defaults: config.audit.outputRedaction.defaults,
        extra: config.audit.outputRedaction.patterns,
      }),
  },
  {
    provide: AuditService,
    inject: [AuditRepository, AuditWriter, CONTROL_PLANE_CONFIG, OutputRedactor],
    useFactory: (
      repo: AuditRepository,
      writer: AuditWriter,
      config: ControlPlaneConfig,
      redactor: OutputRedactor,
    ) => new AuditService(repo, writer, config.audit.outcomeWaitMs, redactor),
  },
];
