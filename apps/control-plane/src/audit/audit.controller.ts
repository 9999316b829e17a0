import { Controller, Get, Inject, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { Request, Response } from 'express';
import {
  AuditErrorCode,
  AuditException,
  AuditService,
  type AuditFilter,
  type AuditKind,
} from '@lq/audit';
import { RequirePermission, projectsWith } from '@lq/auth';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { restCaller } from '../common/caller.js';
import { AuditQueryDto } from './dto/audit-query.dto.js';
import { csvLine } from './audit-export.js';

const EVENT_COLUMNS = [
  'seq',
  'at',
  'kind',
  'request_id',
  'actor',
  'auth_method',
  'source_ip',
  'vm_id',
  'node_id',
  'project_id',
  'operation',
  'params',
  'status',
  'exit_code',
  'duration_ms',
  'error',
  'stdout_sha256',
  'stdout_bytes',
  'stderr_sha256',
  'stderr_bytes',
] as const;

const EXECUTION_COLUMNS = [
  'seq',
  'request_id',
  'started_at',
  'ended_at',
  'actor',
  'auth_method',
  'source_ip',
  'vm_id',
  'node_id',
  'project_id',
  'command',
  'argv',
  'run_as_user',
  'run_as_group',
  'status',
  'exit_code',
  'duration_ms',
  'error',
  'stdout',
  'stderr',
  'stdout_truncated',
  'stderr_truncated',
  'stdout_sha256',
  'stdout_bytes',
  'stderr_sha256',
  'stderr_bytes',
  'output_redaction',
  'output_withheld',
] as const;

const EXPORT_PAGE = 1000;

/**
 * The auditors' API: every audit row and the command history (executions with their output);
 * verification and the verifiable export are AuditIntegrityController's. Filters combine; pages go newest first with a cursor; ndjson
 * and csv stream every matching row.
 */
@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/audit')
export class AuditController {
  constructor(
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  @Get('events')
  @RequirePermission('audit.read')
  @ApiOperation({ summary: 'Audit rows: intents, outcomes, denials, failed sign-ins, admin acts' })
  @ApiProduces('application/json', 'application/x-ndjson', 'text/csv')
  @ApiAnswers(200, {
    'application/json': 'AuditEventsPage',
    'application/x-ndjson': { type: 'string', description: 'One AuditEventView per line' },
    'text/csv': { type: 'string' },
  })
  async events(@Query() q: AuditQueryDto, @Req() req: Request, @Res() res: Response) {
    const filter = this.filterOf(q, req);
    await this.respond(res, q, filter, EVENT_COLUMNS, 'events', (f) => this.audit.events(f));
  }

  @Get('executions')
  @RequirePermission('audit.read')
  @ApiOperation({
    summary:
      'Command history: who ran what where, when, as whom, and what came back (the output only with audit.read_output)',
  })
  @ApiProduces('application/json', 'application/x-ndjson', 'text/csv')
  @ApiAnswers(200, {
    'application/json': 'AuditExecutionsPage',
    'application/x-ndjson': { type: 'string', description: 'One AuditExecutionView per line' },
    'text/csv': { type: 'string' },
  })
  async executions(@Query() q: AuditQueryDto, @Req() req: Request, @Res() res: Response) {
    const filter = this.filterOf(q, req);
    // Stored output is evidence that may hold secrets: its own permission, per project.
    const readable = projectsWith(restCaller(req).principal, 'audit.read_output');
    const mayRead = (project: string | null) =>
      readable === 'all' || (project !== null && readable.includes(project));
    await this.respond(res, q, filter, EXECUTION_COLUMNS, 'executions', async (f) =>
      (await this.audit.executions(f)).map((e) =>
        mayRead(e.project_id) ? e : { ...e, stdout: null, stderr: null, output_withheld: true },
      ),
    );
  }

  private filterOf(q: AuditQueryDto, req: Request): AuditFilter {
    const scope = projectsWith(restCaller(req).principal, 'audit.read');
    const from = q.from ? new Date(q.from) : undefined;
    const to = q.to ? new Date(q.to) : undefined;
    if (from && to && from > to) {
      throw new AuditException(AuditErrorCode.INVALID_QUERY, 'from must not be after to');
    }
    const exporting = q.format === 'ndjson' || q.format === 'csv';
    const max = exporting ? this.config.audit.exportMaxRows : this.config.audit.pageMax;
    if (q.limit !== undefined && q.limit > max) {
      throw new AuditException(
        AuditErrorCode.INVALID_QUERY,
        `limit must be at most ${max} (${exporting ? 'LQ_AUDIT_EXPORT_MAX_ROWS' : 'LQ_AUDIT_PAGE_MAX'})`,
      );
    }
    return {
      actor: q.actor,
      vmId: q.vm_id,
      projectId: q.project,
      operation: q.operation,
      kind: q.kind as AuditKind | undefined,
      // The executions API says succeeded where the audit trail says ok: either finds it.
      outcome: q.outcome === 'succeeded' ? 'ok' : q.outcome,
      from,
      to,
      beforeSeq: q.cursor ? Number(q.cursor) : undefined,
      projects: scope === 'all' ? undefined : scope,
      limit: exporting ? (q.limit ?? max) : (q.limit ?? 100),
    };
  }

  private async respond<T extends { seq: number }>(
    res: Response,
    q: AuditQueryDto,
    filter: AuditFilter,
    columns: readonly string[],
    name: string,
    page: (f: AuditFilter) => Promise<T[]>,
  ): Promise<void> {
    if (!q.format || q.format === 'json') {
      const rows = await page(filter);
      const last = rows.at(-1);
      res.json({
        [name]: rows,
        next_cursor: rows.length === filter.limit && last ? String(last.seq) : null,
      });
      return;
    }
    // Export: page through everything that matches, writing as we go (memory stays one page).
    const csv = q.format === 'csv';
    const max = Math.min(this.config.audit.exportMaxRows, q.limit ?? Infinity);
    let written = 0;
    let cursor = filter.beforeSeq;
    let rows = await page({ ...filter, beforeSeq: cursor, limit: Math.min(EXPORT_PAGE, max) });
    res.status(200);
    res.setHeader('Content-Type', csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
    res.setHeader(
      'Content-Disposition',
      `attachment; filename="audit-${name}.${csv ? 'csv' : 'ndjson'}"`,
    );
    if (csv) {
      res.write(`${columns.join(',')}\r\n`);
    }
    try {
      while (rows.length > 0) {
        for (const row of rows) {
          const line = csv ? csvLine(columns, row) : `${JSON.stringify(row)}\n`;
          if (!res.write(line)) {
            await new Promise<void>((resolve) => res.once('drain', resolve));
          }
        }
        written += rows.length;
        cursor = rows.at(-1)!.seq;
        if (rows.length < EXPORT_PAGE || written >= max || res.destroyed) {
          break;
        }
        rows = await page({
          ...filter,
          beforeSeq: cursor,
          limit: Math.min(EXPORT_PAGE, max - written),
        });
      }
      res.end();
    } catch (err) {
      // Headers are out: cut the connection so a partial export is not mistaken for a whole one.
      res.destroy(err as Error);
    }
  }
}
