import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsInt,
  IsISO8601,
  IsOptional,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';

/** Filters of GET /api/executions (all optional, combined with AND). */
export class ExecutionQueryDto {
  @ApiPropertyOptional({ description: 'VM id' })
  @IsOptional()
  @MaxLength(128)
  vm_id?: string;

  @ApiPropertyOptional({ description: 'project id' })
  @IsOptional()
  @MaxLength(63)
  project?: string;

  @ApiPropertyOptional({
    description:
      'one state or several, comma-separated: pending, running, succeeded, failed, timed_out, cancelled, agent_lost',
    example: 'failed,timed_out',
  })
  @IsOptional()
  @Matches(/^[a-z_]{1,20}(,[a-z_]{1,20}){0,9}$/, {
    message: 'state must be states separated by commas (running,failed)',
  })
  state?: string;

  @ApiPropertyOptional({ description: 'username of who started it' })
  @IsOptional()
  @MaxLength(64)
  actor?: string;

  @ApiPropertyOptional({ description: 'the fleet run it belongs to' })
  @IsOptional()
  @IsUUID('all', { message: 'run_id must be a UUID' })
  run_id?: string;

  @ApiPropertyOptional({ description: 'created at or after this time (ISO 8601)' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 time' })
  from?: string;

  @ApiPropertyOptional({ description: 'created at or before this time (ISO 8601)' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 time' })
  to?: string;

  @ApiPropertyOptional({ description: 'next_cursor of the previous page' })
  @IsOptional()
  @MaxLength(200)
  cursor?: string;

  @ApiPropertyOptional({ default: 50, description: 'rows per page (up to LQ_HISTORY_PAGE_MAX)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'limit must be a whole number from 1' })
  @Min(1, { message: 'limit must be a whole number from 1' })
  @Max(1_000_000, { message: 'limit must be a whole number from 1' })
  limit?: number;
}
