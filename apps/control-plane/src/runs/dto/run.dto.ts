import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsObject,
  IsOptional,
  IsString,
  MaxLength,
  ValidateNested,
} from 'class-validator';
import type { RunBody, RunTargetBody } from '@lq/api';
import { ExecuteDto } from '../../guest-ops/dto/execute.dto.js';

export class RunTargetDto implements RunTargetBody {
  @ApiPropertyOptional({ type: [String], example: ['vm-1', 'vm-2'] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(100_000)
  @IsString({ each: true })
  vm_ids?: string[];

  @ApiPropertyOptional({ example: 'payments' })
  @IsOptional()
  @IsString()
  @MaxLength(63)
  project?: string;

  @ApiPropertyOptional({
    description: 'labels every VM must carry: "env=prod,role=db" or {"env": "prod"}',
    example: 'env=prod,role=db',
  })
  @IsOptional()
  labels?: string | Record<string, string>;
}

/** POST /api/runs: the execute fields plus the target and the pace. */
export class CreateRunDto extends ExecuteDto implements RunBody {
  @ApiProperty({ type: RunTargetDto })
  @IsObject()
  @ValidateNested()
  @Type(() => RunTargetDto)
  target!: RunTargetDto;

  @ApiPropertyOptional({
    description: 'VMs at a time: a number or a percentage of the targets ("10%"); default 10',
    example: 10,
  })
  @IsOptional()
  max_concurrency?: number | string;

  @ApiPropertyOptional({
    description:
      'stop starting new VMs once more than this many have failed: a number or a percentage',
    example: 2,
  })
  @IsOptional()
  max_errors?: number | string;
}
