import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ShutdownMode, isSubjectToken, type ExecuteResponse } from '@lq/proto';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ExecuteDto, toExecuteInput } from './dto/execute.dto.js';
import { FileQueryDto } from './dto/file-query.dto.js';
import { PingDto } from './dto/ping.dto.js';
import { ShutdownDto } from './dto/shutdown.dto.js';
import { VmGuestErrorCode, VmGuestException } from './vm-guest.exception.js';
import { RequirePermission } from '@lq/auth';
import { VmGuestService } from './vm-guest.service.js';
import { restCaller as callerOf } from '../access/rest-caller.js';

const MODES: Record<NonNullable<ShutdownDto['mode']>, ShutdownMode> = {
  poweroff: ShutdownMode.POWEROFF,
  reboot: ShutdownMode.REBOOT,
  halt: ShutdownMode.HALT,
};

function vmIdOf(id: string): string {
  if (!isSubjectToken(id)) {
    throw new VmGuestException(
      VmGuestErrorCode.INVALID_REQUEST,
      'vm id must be 1-128 letters, digits, _ or -',
    );
  }
  return id;
}

export function executeResultJson(vmId: string, r: ExecuteResponse) {
  return {
    vm_id: vmId,
    exit_code: r.exitCode ?? null,
    signal: r.signal || null,
    timed_out: r.timedOut,
    stdout: Buffer.from(r.stdout).toString('utf8'),
    stderr: Buffer.from(r.stderr).toString('utf8'),
    stdout_truncated: r.stdoutTruncated,
    stderr_truncated: r.stderrTruncated,
    stdout_total_bytes: Number(r.stdoutTotalBytes),
    stderr_total_bytes: Number(r.stderrTotalBytes),
    duration_ms: r.durationMs,
  };
}

/**
 * REST guest operations. Thin: parse, one service call, shape the JSON. Errors are
 * VmGuestExceptions mapped to statuses by HttpExceptionFilter.
 */
@ApiTags('guest operations')
@ApiBearerAuth()
@Controller('api/vms/:id')
export class VmGuestController {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(VmGuestService) private readonly guest: VmGuestService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {}

  @Post('ping')
  @RequirePermission('vm.read')
  @HttpCode(200)
  @ApiOperation({ summary: 'Round trip to the VM’s guest agent' })
  ping(@Param('id') id: string, @Body() body: PingDto, @Req() req: Request) {
    const vmId = vmIdOf(id);
    return this.measure('ping', async () => {
      const r = await this.guest.ping(vmId, body.timeout_seconds, callerOf(req));
      return {
        vm_id: vmId,
        agent_version: r.agentVersion,
        uptime_seconds: r.uptimeSeconds,
        latency_ms: r.latencyMs,
      };
    });
  }

  @Post('execute')
  @RequirePermission('guest.exec')
  @HttpCode(200)
  @ApiOperation({ summary: 'Run a command in the guest and wait for it' })
  execute(@Param('id') id: string, @Body() body: ExecuteDto, @Req() req: Request) {
    const vmId = vmIdOf(id);
    const input = toExecuteInput(body);
    return this.measure('execute', async () => {
      const r = await this.guest.execute(vmId, input, callerOf(req));
      return executeResultJson(vmId, r);
    });
  }

  @Post('shutdown')
  @RequirePermission('guest.power')
  @HttpCode(202)
  @ApiOperation({ summary: 'Power off, reboot or halt the guest through its agent' })
  shutdown(@Param('id') id: string, @Body() body: ShutdownDto, @Req() req: Request) {
    const vmId = vmIdOf(id);
    const mode = body.mode ?? 'poweroff';
    return this.measure('shutdown', async () => {
      const r = await this.guest.shutdown(
        vmId,
        MODES[mode],
        body.delay_seconds ?? 0,
        callerOf(req),
      );
      const at = r.scheduledAt
        ? new Date(Number(r.scheduledAt.seconds) * 1000 + r.scheduledAt.nanos / 1e6)
        : undefined;
      return { vm_id: vmId, mode, scheduled_at: at?.toISOString() };
    });
  }

  @Get('files')
  @RequirePermission('guest.file.read')
  @ApiOperation({ summary: 'Download a guest file (streamed in chunks)' })
  async download(
    @Param('id') id: string,
    @Query() query: FileQueryDto,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const vmId = vmIdOf(id);
    let started = false;
    const sink = async (chunk: Uint8Array) => {
      if (!started) {
        started = true;
        res.status(200);
        res.setHeader('Content-Type', 'application/octet-stream');
        res.setHeader(
          'Content-Disposition',
          `attachment; filename="${encodeURIComponent(query.path.split('/').pop() || 'file')}"`,
        );
      }
      if (!res.write(chunk)) {
        await new Promise<void>((resolve) => res.once('drain', resolve));
      }
    };
    // Errors before the first byte become a normal error response; after it, the connection
    // is cut so the client cannot mistake a partial file for a whole one.
    await this.measure('file.read', () =>
      this.guest.readFile(vmId, query.path, sink, callerOf(req)),
    );
    if (!started) {
      res.status(200).setHeader('Content-Type', 'application/octet-stream');
    }
    res.end();
  }

  @Put('files')
  @RequirePermission('guest.file.write')
  @ApiOperation({
    summary: 'Upload a guest file (request body streamed in chunks, replaced atomically)',
  })
  async upload(@Param('id') id: string, @Query() query: FileQueryDto, @Req() req: Request) {
    const vmId = vmIdOf(id);
    const mode = query.mode === undefined ? undefined : Number.parseInt(query.mode, 8);
    const max = this.config.limits.maxUploadBytes;
    const declared = Number(req.header('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        `body of ${declared} bytes exceeds LQ_MAX_UPLOAD_BYTES ${max}`,
      );
    }
    async function* body(): AsyncIterable<Uint8Array> {
      let total = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > max) {
          throw new VmGuestException(
            VmGuestErrorCode.INVALID_REQUEST,
            `body exceeds LQ_MAX_UPLOAD_BYTES ${max}`,
          );
        }
        yield chunk;
      }
    }
    return this.measure('file.write', async () => {
      const r = await this.guest.writeFile(vmId, query.path, body(), mode, callerOf(req));
      return { vm_id: vmId, path: query.path, bytes: r.bytes, size: Number(r.size) };
    });
  }

  private async measure<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await work();
      this.metrics.observe(operation, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      const outcome = err instanceof VmGuestException ? err.code : 'INTERNAL';
      this.metrics.observe(operation, outcome, (performance.now() - started) / 1000);
      throw err;
    }
  }
}
