import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiAnswers, EVENT_STREAM } from '../common/openapi/api-answers.js';
import type { Response } from 'express';
import type { RunListView, RunPreviewView, RunProgressView, RunView } from '@lq/api';
import { openEventStream } from '../common/sse.js';
import { Authenticated, RequirePermission } from '@lq/auth';
import { CurrentCaller, type Caller } from '../common/caller.js';
import { toExecuteInput } from '../guest-ops/dto/execute.dto.js';
import { RunQueryDto } from './dto/run-query.dto.js';
import { CreateRunDto } from './dto/run.dto.js';
import { RunsService } from './runs.service.js';

const PROGRESS_POLL_MS = 500;

/** Fleet runs and the VM labels that target them. */
@ApiTags('runs')
@ApiBearerAuth()
@Controller('api')
export class RunsController {
  constructor(@Inject(RunsService) private readonly runs: RunsService) {}

  @Post('runs')
  @RequirePermission('guest.exec')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Run a command over VMs (ids, a project or labels) with max_concurrency and max_errors',
  })
  @ApiAnswers(202, 'RunView', [404, 409, 503])
  create(@Body() body: CreateRunDto, @CurrentCaller() caller: Caller): Promise<RunView> {
    const { target, max_concurrency, max_errors, ...execute } = body;
    return this.runs.create(
      {
        target,
        input: toExecuteInput(execute),
        maxConcurrency: max_concurrency ?? 10,
        maxErrors: max_errors,
      },
      caller,
    );
  }

  @Post('runs/preview')
  @RequirePermission('guest.exec')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'The VMs a run with this body would target, each would_run or denied; nothing is run or stored (lqctl run --dry-run)',
  })
  @ApiAnswers(200, 'RunPreviewView', [404, 503])
  preview(@Body() body: CreateRunDto, @CurrentCaller() caller: Caller): Promise<RunPreviewView> {
    const { target, max_concurrency, max_errors, ...execute } = body;
    return this.runs.preview(
      {
        target,
        input: toExecuteInput(execute),
        maxConcurrency: max_concurrency ?? 10,
        maxErrors: max_errors,
      },
      caller,
    );
  }

  @Get('runs')
  @Authenticated()
  @ApiOperation({
    summary:
      'Fleet runs, newest first, with filters and a cursor: all of them for a global auditor or admin, the caller’s own otherwise',
  })
  @ApiAnswers(200, 'RunListView')
  list(@Query() q: RunQueryDto, @CurrentCaller() caller: Caller): Promise<RunListView> {
    return this.runs.list(caller, q);
  }

  @Get('runs/:id')
  @Authenticated()
  @ApiOperation({ summary: 'A run: status, counts by state, and each VM’s execution' })
  @ApiAnswers(200, 'RunView', [404])
  get(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<RunView> {
    return this.runs.get(id, caller);
  }

  @Get('runs/:id/events')
  @Authenticated()
  @ApiOperation({
    summary: 'Progress as Server-Sent Events: event progress (the summary) on change, then end',
  })
  @ApiProduces('text/event-stream')
  @ApiAnswers(
    200,
    EVENT_STREAM,
    [404],
    'Events progress (RunProgressView) on change, then end (RunView)',
  )
  async events(
    @Param('id') id: string,
    @Query('follow') _follow: string | undefined,
    @CurrentCaller() caller: Caller,
    @Res() res: Response,
  ): Promise<void> {
    let view = await this.runs.get(id, caller);
    openEventStream(res);
    let last = '';
    let closed = false;
    res.once('close', () => {
      closed = true;
    });
    for (;;) {
      const p: RunProgressView = { status: view.status, summary: view.summary };
      const progress = JSON.stringify(p);
      if (progress !== last) {
        last = progress;
        res.write(`event: progress\ndata: ${progress}\n\n`);
      }
      if (view.status !== 'running' || closed) {
        break;
      }
      await new Promise((r) => setTimeout(r, PROGRESS_POLL_MS));
      view = await this.runs.view(id);
    }
    if (!closed) {
      res.write(`event: end\ndata: ${JSON.stringify(view)}\n\n`);
      res.end();
    }
  }

  @Post('runs/:id/cancel')
  @RequirePermission('guest.exec')
  @HttpCode(202)
  @ApiOperation({ summary: 'Start no more VMs and cancel the running executions' })
  @ApiAnswers(202, 'RunView', [404])
  cancel(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<RunView> {
    return this.runs.cancel(id, caller);
  }
}
