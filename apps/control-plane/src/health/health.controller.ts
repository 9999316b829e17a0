import { Controller, Get, HttpStatus, Inject, Res } from '@nestjs/common';
import { Public } from '@lq/auth';
import { ApiOperation, ApiTags, ApiResponse } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { Response } from 'express';
import type { HealthView } from '@lq/api';
import { InventoryService } from '../inventory/inventory.service.js';
import { NatsService } from '../nats/nats.service.js';

const DATABASE_TIMEOUT_MS = 2000;

export type HealthReport = HealthView;

/** Liveness and readiness: 200 when the database and NATS both answer, 503 naming the failing part. */
@ApiTags('operations')
@Public()
@Controller()
export class HealthController {
  constructor(
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(NatsService) private readonly nats: NatsService,
  ) {}

  @Get('health')
  @ApiOperation({ summary: 'Health of the control plane, its database and NATS' })
  @ApiResponse({
    status: 503,
    description: 'The database or NATS does not answer (named)',
    schema: { $ref: '#/components/schemas/HealthView' },
  })
  @ApiAnswers(200, 'HealthView')
  async health(@Res({ passthrough: true }) res: Response): Promise<HealthReport> {
    const database = (await this.databaseAnswers()) ? 'ok' : 'unavailable';
    const nats = this.nats.healthy ? 'ok' : 'unavailable';
    const ok = database === 'ok' && nats === 'ok';
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: ok ? 'ok' : 'unavailable', database, nats };
  }

  private async databaseAnswers(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), DATABASE_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.inventory.reachable(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
