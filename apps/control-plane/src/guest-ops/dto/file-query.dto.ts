import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { FileMkdirBody, FileRenameBody } from '@lq/api';
import { IsBoolean, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';

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

/** GET /api/vms/:id/files/list */
export class FileListQueryDto {
  @ApiProperty({ description: 'absolute directory in the guest', example: '/var/log' })
  @IsString()
  @MaxLength(4096)
  path!: string;

  @ApiPropertyOptional({ description: 'the previous page’s next_cursor' })
  @IsOptional()
  @IsString()
  @MaxLength(1020)
  cursor?: string;

  @ApiPropertyOptional({
    description: 'entries at most (default: the agent’s files.list_page_entries)',
    example: 500,
  })
  @IsOptional()
  @Matches(/^[1-9][0-9]{0,5}$/, { message: 'limit must be a whole number from 1 to 100000' })
  limit?: string;
}

/** DELETE /api/vms/:id/files */
export class FileDeleteQueryDto {
  @ApiProperty({ description: 'absolute path in the guest', example: '/tmp/old.log' })
  @IsString()
  @MaxLength(4096)
  path!: string;

  @ApiPropertyOptional({
    description: 'true: delete a directory with everything in it',
    enum: ['true', 'false'],
  })
  @IsOptional()
  @IsIn(['true', 'false'], { message: 'recursive must be true or false' })
  recursive?: 'true' | 'false';
}

/** POST /api/vms/:id/files/mkdir */
export class FileMkdirDto implements FileMkdirBody {
  @ApiProperty({ description: 'absolute directory to create', example: '/srv/app/releases' })
  @IsString()
  @MaxLength(4096)
  path!: string;

  @ApiPropertyOptional({ description: 'octal permission bits (default 0755)', example: '0750' })
  @IsOptional()
  @IsString()
  @Matches(/^0?[0-7]{3,4}$/, { message: 'mode must be octal permission bits like 0755' })
  mode?: string;

  @ApiPropertyOptional({ description: 'create missing parent directories too' })
  @IsOptional()
  @IsBoolean()
  parents?: boolean;
}

/** POST /api/vms/:id/files/rename */
export class FileRenameDto implements FileRenameBody {
  @ApiProperty({ example: '/srv/app/current.tmp' })
  @IsString()
  @MaxLength(4096)
  from!: string;

  @ApiProperty({ example: '/srv/app/current' })
  @IsString()
  @MaxLength(4096)
  to!: string;

  @ApiPropertyOptional({ description: 'replace an existing file at `to` (never a directory)' })
  @IsOptional()
  @IsBoolean()
  overwrite?: boolean;
}
