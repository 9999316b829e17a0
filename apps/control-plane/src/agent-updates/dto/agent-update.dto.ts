import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsBoolean,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import type { AgentRolloutBody, AgentUpdateBody } from '@lq/api';
import { RunTargetDto } from '../../runs/dto/run.dto.js';

/** POST /api/vms/:id/agent/update */
export class AgentUpdateDto implements AgentUpdateBody {
  @ApiProperty({ example: '0.2.0', description: 'a release of GET /api/agent/releases' })
  @IsString()
  @MaxLength(64)
  version!: string;

  @ApiPropertyOptional({ description: 'install a version that is not newer than the running one' })
  @IsOptional()
  @IsBoolean()
  allow_downgrade?: boolean;
}

/** POST /api/agent/rollouts */
export class AgentRolloutDto extends AgentUpdateDto implements AgentRolloutBody {
  @ApiProperty({ type: RunTargetDto })
  @IsObject()
  @ValidateNested()
  @Type(() => RunTargetDto)
  target!: RunTargetDto;

  @ApiPropertyOptional({ description: 'VMs updated first, one at a time; default 1', example: 2 })
  @IsOptional()
  @IsInt()
  @Min(0)
  canary?: number;

  @ApiPropertyOptional({
    description: 'VMs at once after the canaries: a number or a percentage; default 5',
    example: 5,
  })
  @IsOptional()
  max_concurrency?: number | string;

  @ApiPropertyOptional({
    description: 'stop once more than this many VMs failed or rolled back; default 0',
    example: 1,
  })
  @IsOptional()
  max_errors?: number | string;
}
