import {
  Body,
  Controller,
  Delete,
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
import { ApiBearerAuth, ApiOperation, ApiTags, ApiBody, ApiConsumes } from '@nestjs/swagger';
import { ApiAnswers, GUEST_OPERATION_ERRORS } from '../common/openapi/api-answers.js';
import type { Request, Response } from 'express';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { ShutdownMode, type ExecuteResponse, type HookResult } from '@lq/proto';
import type {
  DirectoryCreatedView,
  ExecuteResultView,
  FileDeletedView,
  FileListView,
  FileRenamedView,
  FileWrittenView,
  FileStatView,
  FilesystemsView,
  GuestInterfacesView,
  GuestNetworkView,
  NetworkApplyView,
  NetworkConfigureView,
  GuestOsView,
  HookView,
  PasswordSetView,
  PingView,
  QuiesceStatusView,
  QuiesceView,
  ShutdownView,
  SyncTimeView,
  ThawView,
} from '@lq/api';
import { networkInterfaceView, osInfoView } from '../inventory/vm.view.js';
import { QuiesceDto, SetPasswordDto, SyncTimeDto } from './dto/guest-admin.dto.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { ExecuteDto, toExecuteInput } from './dto/execute.dto.js';
import {
  FileDeleteQueryDto,
  FileListQueryDto,
  FileMkdirDto,
  FileQueryDto,
  FileRenameDto,
  FileStatQueryDto,
} from './dto/file-query.dto.js';
import { PingDto } from './dto/ping.dto.js';
import { NetworkConfigureDto, NetworkConfirmDto } from './dto/network.dto.js';
import { ShutdownDto } from './dto/shutdown.dto.js';
import { VmGuestErrorCode, VmGuestException } from './vm-guest.exception.js';
import { RequirePermission } from '@lq/auth';
import { GuestOperationRunner } from './guest-operation.runner.js';
import {
  EXECUTE,
  FILE_DELETE,
  FILE_DOWNLOAD,
  FILE_LIST,
  FILE_MKDIR,
  FILE_RENAME,
  fileListView,
  FILE_STAT,
  fileStatView,
  FILE_UPLOAD,
  FS_INFO,
  INFO,
  applyView,
  guestNetworkView,
  NETWORK_CONFIGURE,
  NETWORK_CONFIRM,
  NETWORK_GET,
  networkConfigureView,
  PASSWORD_SET,
  PING,
  QUIESCE,
  QUIESCE_STATUS,
  SHUTDOWN,
  THAW,
  TIME_SYNC,
} from './operations/index.js';
import { CurrentCaller, type Caller } from '../common/caller.js';

const MODES: Record<NonNullable<ShutdownDto['mode']>, ShutdownMode> = {
  poweroff: ShutdownMode.POWEROFF,
  reboot: ShutdownMode.REBOOT,
  halt: ShutdownMode.HALT,
};

function hookJson(h: HookResult): HookView {
  return {
    name: h.name,
    phase: h.phase,
    exit_code: h.exitCode ?? null,
    signal: h.signal || null,
    timed_out: h.timedOut,
    duration_ms: h.durationMs,
  };
}

export function executeResultJson(vmId: string, r: ExecuteResponse): ExecuteResultView {
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
 * REST guest operations. Thin: each route is a permission, one run of its operation's spec
 * through the audited path (GuestOperationRunner), and the JSON shape. Errors are mapped to
 * statuses by HttpExceptionFilter.
 */
@ApiTags('guest operations')
@ApiBearerAuth()
@Controller('api/vms/:id')
export class VmGuestController {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(GuestOperationRunner) private readonly guest: GuestOperationRunner,
  ) {}

  @Post('ping')
  @RequirePermission('vm.read')
  @HttpCode(200)
  @ApiOperation({ summary: 'Round trip to the VM’s guest agent' })
  @ApiAnswers(200, 'PingView', GUEST_OPERATION_ERRORS)
  async ping(
    @Param('id') vmId: string,
    @Body() body: PingDto,
    @CurrentCaller() caller: Caller,
  ): Promise<PingView> {
    const r = await this.guest.run(PING, caller, vmId, { timeoutSeconds: body.timeout_seconds });
    return {
      vm_id: vmId,
      agent_version: r.agentVersion,
      uptime_seconds: r.uptimeSeconds,
      latency_ms: r.latencyMs,
    };
  }

  @Post('execute')
  @RequirePermission('guest.exec')
  @HttpCode(200)
  @ApiOperation({ summary: 'Run a command in the guest and wait for it' })
  @ApiAnswers(200, 'ExecuteResultView', GUEST_OPERATION_ERRORS)
  async execute(
    @Param('id') vmId: string,
    @Body() body: ExecuteDto,
    @CurrentCaller() caller: Caller,
  ): Promise<ExecuteResultView> {
    const r = await this.guest.run(EXECUTE, caller, vmId, toExecuteInput(body));
    return executeResultJson(vmId, r);
  }

  @Post('shutdown')
  @RequirePermission('guest.power')
  @HttpCode(202)
  @ApiOperation({ summary: 'Power off, reboot or halt the guest through its agent' })
  @ApiAnswers(202, 'ShutdownView', GUEST_OPERATION_ERRORS)
  async shutdown(
    @Param('id') vmId: string,
    @Body() body: ShutdownDto,
    @CurrentCaller() caller: Caller,
  ): Promise<ShutdownView> {
    const mode = body.mode ?? 'poweroff';
    const r = await this.guest.run(SHUTDOWN, caller, vmId, {
      mode: MODES[mode],
      delaySeconds: body.delay_seconds ?? 0,
    });
    return {
      vm_id: vmId,
      mode,
      scheduled_at: r.scheduledAt ? timestampDate(r.scheduledAt).toISOString() : undefined,
    };
  }

  @Post('quiesce')
  @RequirePermission('guest.quiesce')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Freeze the guest’s filesystems (pre-freeze hooks; auto-thaw after timeout_seconds)',
  })
  @ApiAnswers(200, 'QuiesceView', GUEST_OPERATION_ERRORS)
  async quiesce(
    @Param('id') vmId: string,
    @Body() body: QuiesceDto,
    @CurrentCaller() caller: Caller,
  ): Promise<QuiesceView> {
    const r = await this.guest.run(QUIESCE, caller, vmId, {
      mountPoints: body.mount_points ?? [],
      timeoutSeconds: body.timeout_seconds,
    });
    return {
      vm_id: vmId,
      frozen: r.frozen,
      thaw_deadline: r.thawDeadline ? timestampDate(r.thawDeadline).toISOString() : null,
      hooks: r.hooks.map(hookJson),
    };
  }

  @Post('thaw')
  @RequirePermission('guest.quiesce')
  @HttpCode(200)
  @ApiOperation({ summary: 'Thaw the guest’s filesystems (post-thaw hooks after)' })
  @ApiAnswers(200, 'ThawView', GUEST_OPERATION_ERRORS)
  async thaw(@Param('id') vmId: string, @CurrentCaller() caller: Caller): Promise<ThawView> {
    const r = await this.guest.run(THAW, caller, vmId, undefined);
    return {
      vm_id: vmId,
      was_frozen: r.wasFrozen,
      thawed: r.thawed,
      hooks: r.hooks.map(hookJson),
    };
  }

  @Get('quiesce')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Whether the guest is frozen, which mounts, until when' })
  @ApiAnswers(200, 'QuiesceStatusView', GUEST_OPERATION_ERRORS)
  async quiesceStatus(
    @Param('id') vmId: string,
    @CurrentCaller() caller: Caller,
  ): Promise<QuiesceStatusView> {
    const r = await this.guest.run(QUIESCE_STATUS, caller, vmId, undefined);
    const iso = (t: typeof r.frozenAt) => (t ? timestampDate(t).toISOString() : null);
    return {
      vm_id: vmId,
      frozen: r.frozen,
      mount_points: r.mountPoints,
      frozen_at: iso(r.frozenAt),
      thaw_deadline: iso(r.thawDeadline),
      last_auto_thaw: iso(r.lastAutoThaw),
    };
  }

  @Post('sync-time')
  @RequirePermission('guest.time')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Step the guest clock with its time service, or (force) from the control plane’s clock',
  })
  @ApiAnswers(200, 'SyncTimeView', GUEST_OPERATION_ERRORS)
  async syncTime(
    @Param('id') vmId: string,
    @Body() body: SyncTimeDto,
    @CurrentCaller() caller: Caller,
  ): Promise<SyncTimeView> {
    const r = await this.guest.run(TIME_SYNC, caller, vmId, { force: body.force ?? false });
    return {
      vm_id: vmId,
      method: r.method,
      offset_before_ms: r.offsetBeforeMs ?? null,
      offset_after_ms: r.offsetAfterMs ?? null,
      rtc_error: r.rtcError || null,
    };
  }

  @Post('password')
  @RequirePermission('guest.password')
  @HttpCode(200)
  @ApiOperation({ summary: 'Set a guest user’s password (chpasswd); never logged or audited' })
  @ApiAnswers(200, 'PasswordSetView', GUEST_OPERATION_ERRORS)
  async setPassword(
    @Param('id') vmId: string,
    @Body() body: SetPasswordDto,
    @CurrentCaller() caller: Caller,
  ): Promise<PasswordSetView> {
    await this.guest.run(PASSWORD_SET, caller, vmId, {
      username: body.username,
      password: body.password,
      cryptedHash: body.crypted_hash,
    });
    return { vm_id: vmId, username: body.username, result: 'password set' };
  }

  @Get('filesystems')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Mounted filesystems, type, size and use (asked now)' })
  @ApiAnswers(200, 'FilesystemsView', GUEST_OPERATION_ERRORS)
  async filesystems(
    @Param('id') vmId: string,
    @CurrentCaller() caller: Caller,
  ): Promise<FilesystemsView> {
    const r = await this.guest.run(FS_INFO, caller, vmId, undefined);
    return {
      vm_id: vmId,
      filesystems: r.filesystems.map((f) => ({
        mount_point: f.mountPoint,
        device: f.device,
        fs_type: f.fsType,
        total_bytes: Number(f.totalBytes),
        used_bytes: Number(f.usedBytes),
        read_only: f.readOnly,
        freezable: f.freezable,
      })),
    };
  }

  @Get('os')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'OS facts (asked now)' })
  @ApiAnswers(200, 'GuestOsView', GUEST_OPERATION_ERRORS)
  async os(@Param('id') vmId: string, @CurrentCaller() caller: Caller): Promise<GuestOsView> {
    const r = await this.guest.run(INFO, caller, vmId, undefined);
    return {
      vm_id: vmId,
      os: r.info?.os ? osInfoView(r.info.os) : null,
      hostname: r.info?.hostname ?? null,
    };
  }

  @Get('interfaces')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Network interfaces and addresses (asked now)' })
  @ApiAnswers(200, 'GuestInterfacesView', GUEST_OPERATION_ERRORS)
  async interfaces(
    @Param('id') vmId: string,
    @CurrentCaller() caller: Caller,
  ): Promise<GuestInterfacesView> {
    const r = await this.guest.run(INFO, caller, vmId, undefined);
    return {
      vm_id: vmId,
      interfaces: (r.info?.interfaces ?? []).map(networkInterfaceView),
    };
  }

  @Get('network')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'The guest network configuration as its agent reads it' })
  @ApiAnswers(200, 'GuestNetworkView', GUEST_OPERATION_ERRORS)
  async network(
    @Param('id') vmId: string,
    @CurrentCaller() caller: Caller,
  ): Promise<GuestNetworkView> {
    return guestNetworkView(vmId, await this.guest.run(NETWORK_GET, caller, vmId, undefined));
  }

  @Put('network')
  @RequirePermission('guest.network.configure')
  @ApiOperation({
    summary:
      'Apply a network configuration; confirmed once the guest reports the new addresses, rolled back by the agent otherwise',
  })
  @ApiAnswers(200, 'NetworkConfigureView', GUEST_OPERATION_ERRORS)
  async configureNetwork(
    @Param('id') vmId: string,
    @Body() body: NetworkConfigureDto,
    @CurrentCaller() caller: Caller,
  ): Promise<NetworkConfigureView> {
    const r = await this.guest.run(NETWORK_CONFIGURE, caller, vmId, {
      interfaces: body.interfaces,
      confirmTimeoutSeconds: body.confirm_timeout_seconds,
      dryRun: body.dry_run,
      manualConfirm: body.manual_confirm,
    });
    return networkConfigureView(vmId, r);
  }

  @Post('network/confirm')
  @HttpCode(200)
  @RequirePermission('guest.network.configure')
  @ApiOperation({ summary: 'Confirm a pending network apply (after a PUT with manual_confirm)' })
  @ApiAnswers(200, 'NetworkApplyView', GUEST_OPERATION_ERRORS)
  async confirmNetwork(
    @Param('id') vmId: string,
    @Body() body: NetworkConfirmDto,
    @CurrentCaller() caller: Caller,
  ): Promise<NetworkApplyView | null> {
    const r = await this.guest.run(NETWORK_CONFIRM, caller, vmId, { applyId: body.apply_id });
    return applyView(r.status);
  }

  @Get('files/stat')
  @RequirePermission('guest.file.read')
  @ApiOperation({ summary: 'A guest file’s type, size, mode, owner and times (like stat)' })
  @ApiAnswers(200, 'FileStatView', GUEST_OPERATION_ERRORS)
  async statFile(
    @Param('id') vmId: string,
    @Query() query: FileStatQueryDto,
    @CurrentCaller() caller: Caller,
  ): Promise<FileStatView> {
    const r = await this.guest.run(FILE_STAT, caller, vmId, {
      path: query.path,
      noFollow: query.no_follow === 'true',
    });
    return fileStatView(vmId, query.path, r);
  }

  @Get('files/list')
  @RequirePermission('guest.file.read')
  @ApiOperation({
    summary: 'One page of a guest directory’s entries, sorted by name (next_cursor pages on)',
  })
  @ApiAnswers(200, 'FileListView', GUEST_OPERATION_ERRORS)
  async listFiles(
    @Param('id') vmId: string,
    @Query() query: FileListQueryDto,
    @CurrentCaller() caller: Caller,
  ): Promise<FileListView> {
    const r = await this.guest.run(FILE_LIST, caller, vmId, {
      path: query.path,
      cursor: query.cursor,
      limit: query.limit === undefined ? undefined : Number(query.limit),
    });
    return fileListView(vmId, query.path, r);
  }

  @Post('files/mkdir')
  @HttpCode(201)
  @RequirePermission('guest.file.write')
  @ApiOperation({ summary: 'Create a guest directory (parents: like mkdir -p)' })
  @ApiAnswers(201, 'DirectoryCreatedView', GUEST_OPERATION_ERRORS)
  async makeDirectory(
    @Param('id') vmId: string,
    @Body() body: FileMkdirDto,
    @CurrentCaller() caller: Caller,
  ): Promise<DirectoryCreatedView> {
    const r = await this.guest.run(FILE_MKDIR, caller, vmId, {
      path: body.path,
      mode: body.mode === undefined ? undefined : Number.parseInt(body.mode, 8),
      parents: body.parents,
    });
    return { vm_id: vmId, path: body.path, created: r.created };
  }

  @Post('files/rename')
  @HttpCode(200)
  @RequirePermission('guest.file.write')
  @ApiOperation({ summary: 'Rename or move a guest file or directory' })
  @ApiAnswers(200, 'FileRenamedView', GUEST_OPERATION_ERRORS)
  async renameFile(
    @Param('id') vmId: string,
    @Body() body: FileRenameDto,
    @CurrentCaller() caller: Caller,
  ): Promise<FileRenamedView> {
    await this.guest.run(FILE_RENAME, caller, vmId, {
      from: body.from,
      to: body.to,
      overwrite: body.overwrite,
    });
    return { vm_id: vmId, from: body.from, to: body.to };
  }

  @Delete('files')
  @RequirePermission('guest.file.write')
  @ApiOperation({
    summary: 'Delete a guest file, link or empty directory (recursive=true: a whole tree)',
  })
  @ApiAnswers(200, 'FileDeletedView', GUEST_OPERATION_ERRORS)
  async deleteFile(
    @Param('id') vmId: string,
    @Query() query: FileDeleteQueryDto,
    @CurrentCaller() caller: Caller,
  ): Promise<FileDeletedView> {
    const r = await this.guest.run(FILE_DELETE, caller, vmId, {
      path: query.path,
      recursive: query.recursive === 'true',
    });
    return { vm_id: vmId, path: query.path, removed: Number(r.removed) };
  }

  @Get('files')
  @RequirePermission('guest.file.read')
  @ApiOperation({ summary: 'Download a guest file (streamed in chunks)' })
  @ApiAnswers(
    200,
    { 'application/octet-stream': { type: 'string', format: 'binary' } },
    GUEST_OPERATION_ERRORS,
    'The file’s bytes',
  )
  async download(
    @Param('id') vmId: string,
    @Query() query: FileQueryDto,
    @CurrentCaller() caller: Caller,
    @Res() res: Response,
  ): Promise<void> {
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
    await this.guest.run(FILE_DOWNLOAD, caller, vmId, { path: query.path, sink });
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
  @ApiConsumes('application/octet-stream')
  @ApiBody({
    description: 'The file’s bytes (any Content-Type; at most LQ_MAX_UPLOAD_BYTES)',
    schema: { type: 'string', format: 'binary' },
  })
  @ApiAnswers(200, 'FileWrittenView', GUEST_OPERATION_ERRORS)
  async upload(
    @Param('id') vmId: string,
    @Query() query: FileQueryDto,
    @CurrentCaller() caller: Caller,
    @Req() req: Request,
  ): Promise<FileWrittenView> {
    const mode = query.mode === undefined ? undefined : Number.parseInt(query.mode, 8);
    const max = this.config.limits.maxUploadBytes;
    const declared = Number(req.header('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      throw new VmGuestException(
        VmGuestErrorCode.TOO_LARGE,
        `body of ${declared} bytes exceeds LQ_MAX_UPLOAD_BYTES ${max}`,
      );
    }
    async function* body(): AsyncIterable<Uint8Array> {
      let total = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > max) {
          throw new VmGuestException(
            VmGuestErrorCode.TOO_LARGE,
            `body exceeds LQ_MAX_UPLOAD_BYTES ${max}`,
          );
        }
        yield chunk;
      }
    }
    const r = await this.guest.run(FILE_UPLOAD, caller, vmId, {
      path: query.path,
      source: body(),
      mode,
    });
    return { vm_id: vmId, path: query.path, bytes: r.bytes, size: r.size };
  }
}
