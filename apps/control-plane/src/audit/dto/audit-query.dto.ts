import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsIn,
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { AUDIT_KINDS } from '@lq/audit';

/** Filters of GET /api/audit/events and /api/audit/executions (all optional, combined with AND). */
export class AuditQueryDto {
  @ApiPropertyOptional({ description: 'username' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  actor?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(128)
  vm_id?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(63)
  project?: string;

  @ApiPropertyOptional({
    example: 'execute',
    description: 'execute, ping, file.read, file.write, shutdown, user.create, …',
  })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  operation?: string;

  @ApiPropertyOptional({ enum: AUDIT_KINDS })
  @IsOptional()
  @IsIn([...AUDIT_KINDS])
  kind?: string;

  @ApiPropertyOptional({
    description:
      'ok, error (every failure), or a status such as timed_out, AGENT_NOT_CONNECTED, PERMISSION_DENIED',
  })
  @IsOptional()
  @Matches(/^[A-Za-z_:.]{1,64}$/, { message: 'outcome must be ok, error or a status code' })
  outcome?: string;

  @ApiPropertyOptional({ description: 'from this time (ISO 8601), inclusive' })
  @IsOptional()
  @IsISO8601({ strict: true })
  from?: string;

  @ApiPropertyOptional({ description: 'up to this time (ISO 8601), inclusive' })
  @IsOptional()
  @IsISO8601({ strict: true })
  to?: string;

  @ApiPropertyOptional({ description: 'next_cursor of the previous page' })
  @IsOptional()
  @Matches(/^[1-9][0-9]{0,17}$/, { message: 'cursor must be the next_cursor of a previous page' })
  cursor?: string;

  @ApiPropertyOptional({
    default: 100,
    description:
      'rows per page (up to LQ_AUDIT_PAGE_MAX); with an export, rows in all (up to LQ_AUDIT_EXPORT_MAX_ROWS)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  limit?: number;

  @ApiPropertyOptional({
    enum: ['json', 'ndjson', 'csv'],
    description:
      'ndjson or csv stream every matching row (up to LQ_AUDIT_EXPORT_MAX_ROWS) instead of a page',
  })
  @IsOptional()
  @IsIn(['json', 'ndjson', 'csv'])
  format?: 'json' | 'ndjson' | 'csv';
}
