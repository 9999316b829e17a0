import { Logger, type Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditRepository, AuditService, AuditWriter, CheckpointRepository } from '@lq/audit';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';

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
      return new AuditWriter(
        (records) => repo.append(records),
        {
          maxBatch: config.audit.batchMax,
          writeTimeoutMs: config.audit.writeTimeoutMs,
          maxPending: config.audit.pendingMax,
          retryDelayMs: config.audit.retryMs,
        },
        { warn: (m) => log.warn(m), error: (m) => log.error(m) },
      );
    },
  },
  {
    provide: AuditService,
    inject: [AuditRepository, AuditWriter, CONTROL_PLANE_CONFIG],
    useFactory: (repo: AuditRepository, writer: AuditWriter, config: ControlPlaneConfig) =>
      new AuditService(repo, writer, config.audit.outcomeWaitMs),
  },
];
