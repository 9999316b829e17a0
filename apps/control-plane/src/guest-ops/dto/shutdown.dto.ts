import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';
import type { ShutdownBody } from '@lq/api';

export const SHUTDOWN_MODES = ['poweroff', 'reboot', 'halt'] as const;

export class ShutdownDto implements ShutdownBody {
  @ApiPropertyOptional({ enum: SHUTDOWN_MODES, default: 'poweroff' })
  @IsOptional()
  @IsIn(SHUTDOWN_MODES)
  mode?: (typeof SHUTDOWN_MODES)[number];

  @ApiPropertyOptional({ minimum: 0, maximum: 3600 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(3600)
  delay_seconds?: number;
}
