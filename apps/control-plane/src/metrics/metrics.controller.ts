import { Controller, Get, Inject, Res } from '@nestjs/common';
import { Public } from '@lq/auth';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { Response } from 'express';
import { MetricsService } from './metrics.service.js';

@ApiTags('operations')
@Public()
@Controller()
export class MetricsController {
  constructor(@Inject(MetricsService) private readonly metrics: MetricsService) {}

  @Get('metrics')
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format)' })
  @ApiProduces('text/plain')
  @ApiAnswers(200, {
    'text/plain': { type: 'string', description: 'Prometheus text exposition format' },
  })
  async scrape(@Res() res: Response): Promise<void> {
    const body = await this.metrics.metrics();
    res.status(200).type(this.metrics.contentType).send(body);
  }
}
