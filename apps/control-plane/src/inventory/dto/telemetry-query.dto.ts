import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsISO8601, IsInt, IsNumber, IsOptional, Max, Min } from 'class-validator';

/** GET /api/vms/:id/telemetry: the window (the service checks order and length). */
export class TelemetrySeriesQueryDto {
  @ApiPropertyOptional({
    description: 'start of the window (ISO 8601); default `to` − 1 h',
    example: '2026-12-05T09:00:00Z',
  })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 time' })
  from?: string;

  @ApiPropertyOptional({ description: 'end of the window (ISO 8601); default now' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 time' })
  to?: string;
}

/** GET /api/fleet/summary */
export class FleetSummaryQueryDto {
  @ApiPropertyOptional({
    description: 'VMs per top list and full filesystems listed (at most LQ_FLEET_SUMMARY_TOP_MAX)',
    default: 10,
  })
  @IsOptional()
  @Type(() => Number)
  // Checked bottom up: the type first.
  @Min(1, { message: 'top must be at least 1' })
  @IsInt({ message: 'top must be an integer' })
  top?: number;

  @ApiPropertyOptional({
    description: 'a filesystem used this much (percent) or more is listed in full_disks',
    default: 90,
  })
  @IsOptional()
  @Type(() => Number)
  @Min(0, { message: 'disk_percent must be from 0 to 100' })
  @Max(100, { message: 'disk_percent must be from 0 to 100' })
  @IsNumber({}, { message: 'disk_percent must be a number' })
  disk_percent?: number;
}
