import { ApiProperty } from '@nestjs/swagger';
import { IsObject, IsString, Matches, MaxLength } from 'class-validator';

export class SetVmProjectDto {
  @ApiProperty({ example: 'payments' })
  @IsString()
  @MaxLength(63)
  project!: string;
}

export class SetVmNodeDto {
  @ApiProperty({ example: 'node-2', description: 'a node in the inventory (GET /api/nodes)' })
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,128}$/, {
    message: 'node must be 1-128 letters, digits, _ or - (a node id)',
  })
  node!: string;
}

export class SetLabelsDto {
  @ApiProperty({ example: { env: 'prod', role: 'db' } })
  @IsObject()
  labels!: Record<string, string>;
}
