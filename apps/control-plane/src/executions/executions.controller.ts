import { TextDecoder } from 'node:util';
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  Logger,
  Param,
  Post,
  Query,
  Req,
  Res,
  type BeforeApplicationShutdown,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiAnswers, EVENT_STREAM, GUEST_OPERATION_ERRORS } from '../common/openapi/api-answers.js';
import type { Request, Response } from 'express';
import type {
  ExecutionListView,
  ExecutionStartedView,
  ExecutionStatusView,
  ExecutionView,
  OutputChunkView,
  OutputPageView,
} from '@lq/api';
import { openEventStream } from '../common/sse.js';
import { Authenticated, RequirePermission } from '@lq/auth';
import { CurrentCaller, restCaller, type Caller } from '../common/caller.js';
import { ExecuteDto, toExecuteInput } from '../guest-ops/dto/execute.dto.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import type { OutputChunk } from './executions.repository.js';
import { ExecutionQueryDto } from './dto/execution-query.dto.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { ExecutionsService } from './executions.service.js';

const SSE_KEEPALIVE_MS = 15_000;
/** Output shown inline by GET /api/executions/:id (the full stream is /output). */
const INLINE_OUTPUT_MAX = 1024 * 1024;

/**
 * One output chunk as JSON: `text` decoded with the stream's own decoder (so a UTF-8 character
 * split between two chunks is not mangled), and `base64`, the exact bytes, for binary output.
 */
export function chunkJson(
  c: OutputChunk,
  decoders?: Record<'stdout' | 'stderr', TextDecoder>,
): OutputChunkView {
  return {
    seq: c.seq,
    stream: c.stream,
    text: decoders ? decoders[c.stream].decode(c.data, { stream: true }) : c.data.toString('utf8'),
    base64: c.data.toString('base64'),
    dropped_bytes: c.droppedBytes || undefined,
    redactions: c.redactions || undefined,
  };
}

function afterOf(query: string | undefined, lastEventId: string | undefined): number {
  const raw = query ?? lastEventId ?? '0';
  if (!/^\d{1,15}$/.test(raw)) {
    throw new VmGuestException(
      VmGuestErrorCode.INVALID_REQUEST,
      'after (or Last-Event-ID) must be a sequence number',
    );
  }
  return Number(raw);
}

/**
 * Asynchronous executions: start (202), status and output so far, the output as Server-Sent
 * Events (live, resumable from a sequence number), cancel.
 */
@ApiTags('executions')
@ApiBearerAuth()
@Controller('api')
export class ExecutionsController implements BeforeApplicationShutdown {
  private readonly log = new Logger('executions');
  private readonly streams = new Set<Response>();

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(ExecutionsService) private readonly executions: ExecutionsService,
  ) {}

  @Post('vms/:id/executions')
  @RequirePermission('guest.exec')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Start a command in the guest and answer at once with its execution id',
  })
  @ApiAnswers(202, 'ExecutionStartedView', GUEST_OPERATION_ERRORS)
  async start(
    @Param('id') id: string,
    @Body() body: ExecuteDto,
    @CurrentCaller() caller: Caller,
  ): Promise<ExecutionStartedView> {
    const view = await this.executions.start(id, toExecuteInput(body), caller);
    return {
      ...view,
      links: {
        self: `/api/executions/${view.id}`,
        output: `/api/executions/${view.id}/output?follow=1`,
        cancel: `/api/executions/${view.id}/cancel`,
      },
    };
  }

  @Get('executions')
  @Authenticated()
  @ApiOperation({
    summary:
      'Executions the caller may read (guest.exec or audit.read on their project), newest first, with filters and a cursor',
  })
  @ApiAnswers(200, 'ExecutionListView')
  list(@Query() q: ExecutionQueryDto, @CurrentCaller() caller: Caller): Promise<ExecutionListView> {
    return this.executions.list(caller, q);
  }

  @Get('executions/:id')
  @Authenticated()
  @ApiOperation({
    summary:
      'Status, exit code, timings (guest.exec or audit.read) and the output so far (its actor, or audit.read_output)',
  })
  @ApiAnswers(200, 'ExecutionStatusView', [404])
  async get(
    @Param('id') id: string,
    @CurrentCaller() caller: Caller,
  ): Promise<ExecutionStatusView> {
    const view = await this.executions.get(id, caller);
    if (!(await this.executions.mayReadOutput(id, caller))) {
      return {
        ...view,
        stdout: '',
        stderr: '',
        output_truncated: false,
        output_withheld: true,
        last_seq: 0,
      };
    }
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    let bytes = 0;
    let after = 0;
    let truncated = false;
    for (;;) {
      const page = await this.executions.output(id, caller, after);
      for (const c of page) {
        after = c.seq;
        if (bytes + c.data.length > INLINE_OUTPUT_MAX) {
          truncated = true;
          break;
        }
        bytes += c.data.length;
        out[c.stream].push(c.data);
      }
      if (truncated || page.length < 500) {
        break;
      }
    }
    return {
      ...view,
      stdout: Buffer.concat(out.stdout).toString('utf8'),
      stderr: Buffer.concat(out.stderr).toString('utf8'),
      output_truncated: truncated,
      last_seq: after,
    };
  }

  @Get('executions/:id/output')
  @Authenticated()
  @ApiOperation({
    summary:
      'The output (its actor, or audit.read_output): with follow=1 as Server-Sent Events (event output, id = sequence number; then event end), resumable with after or Last-Event-ID',
  })
  @ApiQuery({ name: 'follow', required: false, enum: ['0', '1'] })
  @ApiQuery({ name: 'after', required: false, description: 'last sequence number seen' })
  @ApiProduces('text/event-stream', 'application/json')
  @ApiAnswers(
    200,
    { ...EVENT_STREAM, 'application/json': 'OutputPageView' },
    [404, 503],
    'follow=1: events output (OutputChunkView) then end (ExecutionView); else a page of chunks',
  )
  async output(
    @Param('id') id: string,
    @Query('follow') follow: string | undefined,
    @Query('after') after: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const caller = restCaller(req);
    const from = afterOf(after, req.header('last-event-id'));
    if (follow !== '1' && follow !== 'true') {
      const chunks = await this.executions.output(id, caller, from);
      const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
      const page: OutputPageView = {
        chunks: chunks.map((c) => chunkJson(c, decoders)),
        next_after: chunks.at(-1)?.seq ?? from,
      };
      res.json(page);
      return;
    }
    let headersSent = false;
    const open = () => {
      if (!headersSent) {
        headersSent = true;
        openEventStream(res);
      }
    };
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    const maxBuffered = this.config.output.followBufferBytes;
    // Back-pressure: past maxBuffered unsent bytes the follower waits for 'drain' and then reads
    // what it skipped from the store, so a slow reader costs this process a bounded buffer.
    const drained = () =>
      new Promise<void>((resolve) => {
        if (res.writableLength === 0 || res.destroyed) {
          resolve();
          return;
        }
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.once('drain', done);
        res.once('close', done);
      });
    const stop = await this.executions.follow(id, caller, from, {
      chunk: (c) => {
        open();
        res.write(
          `id: ${c.seq}\nevent: output\ndata: ${JSON.stringify(chunkJson(c, decoders))}\n\n`,
        );
        return res.writableLength < maxBuffered;
      },
      drained,
      end: (view: ExecutionView) => {
        open();
        res.write(`event: end\ndata: ${JSON.stringify(view)}\n\n`);
        res.end();
      },
    });
    open();
    const keepalive = setInterval(() => {
      if (res.writableLength < maxBuffered) {
        res.write(': keepalive\n\n');
      }
    }, SSE_KEEPALIVE_MS);
    this.streams.add(res);
    const close = () => {
      clearInterval(keepalive);
      this.streams.delete(res);
      stop();
    };
    res.once('close', close);
  }

  @Post('executions/:id/cancel')
  @RequirePermission('guest.exec')
  @HttpCode(202)
  @ApiOperation({ summary: 'Stop the execution’s process group in the guest' })
  @ApiAnswers(202, 'ExecutionView', [404, 409, 502, 503, 504])
  cancel(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<ExecutionView> {
    return this.executions.cancel(id, caller);
  }

  beforeApplicationShutdown(): void {
    for (const res of this.streams) {
      res.end();
    }
    if (this.streams.size > 0) {
      this.log.log(`ended ${this.streams.size} output streams`);
    }
  }
}
