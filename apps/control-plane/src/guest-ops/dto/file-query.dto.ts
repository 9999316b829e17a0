import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';

export class FileQueryDto {
  @ApiProperty({ description: 'absolute path in the guest', example: '/etc/hostname' })
  @IsString()
  @MaxLength(4096)
  path!: string;

  @ApiPropertyOptional({ description: 'octal permission bits for PUT, e.g. 0644' })
  @IsOptional()
  @Matches(/^0?[0-7]{3,4}$/, { message: 'mode must be octal permission bits like 0644' })
  mode?: string;
}

/** GET /api/vms/:id/files/stat */
export class FileStatQueryDto {
  @ApiProperty({ description: 'absolute path in the guest', example: '/etc/hostname' })
  @IsString()
  @MaxLength(4096)
  path!: string;

  @ApiPropertyOptional({
    description: 'true: describe a symbolic link itself, not what it points to',
    enum: ['true', 'false'],
  })
  @IsOptional()
  @IsIn(['true', 'false'], { message: 'no_follow must be true or false' })
  no_follow?: 'true' | 'false';
}
