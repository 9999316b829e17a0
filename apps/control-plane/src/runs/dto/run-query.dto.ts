import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsISO8601, IsOptional, Matches, Max, MaxLength, Min } from 'class-validator';

/** Filters of GET /api/runs (all optional, combined with AND). */
export class RunQueryDto {
  @ApiPropertyOptional({ description: 'runs that targeted this VM' })
  @IsOptional()
  @MaxLength(128)
  vm_id?: string;

  @ApiPropertyOptional({ description: 'runs that targeted a VM of this project' })
  @IsOptional()
  @MaxLength(63)
  project?: string;

  @ApiPropertyOptional({
    description:
      'one state or several, comma-separated: running, succeeded, failed, stopped, cancelled',
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
