import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';

/** GET /api/audit/verify */
export class VerifyQueryDto {
  @ApiPropertyOptional({
    enum: ['true', 'false'],
    description:
      'true: stream NDJSON, a {"progress":{rows,last_seq}} line per page, then {"report":…}',
  })
  @IsOptional()
  @IsIn(['true', 'false'])
  progress?: 'true' | 'false';
}
