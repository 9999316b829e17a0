import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { QuiesceBody } from '@lq/api';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';

/** POST /api/vms/:id/quiesce (the seed's §7.1). */
export class QuiesceDto implements QuiesceBody {
  @ApiPropertyOptional({
    type: [String],
    example: ['/'],
    description: 'mount points to freeze; omitted: every freezable local filesystem',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @IsString({ each: true })
  @MaxLength(4096, { each: true })
  mount_points?: string[];

  @ApiPropertyOptional({
    example: 60,
    description: 'the guest thaws by itself after this long without a thaw',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(86_400)
  timeout_seconds?: number;
}

/** POST /api/vms/:id/sync-time (the seed's §7.3). */
export class SyncTimeDto {
  @ApiPropertyOptional({
    example: true,
    description:
      'set the clock from the control plane’s time even when the guest has a time service',
  })
  @IsOptional()
  @IsBoolean()
  force?: boolean;
}

/** POST /api/vms/:id/password. */
export class SetPasswordDto {
  @ApiProperty({ example: 'alice' })
  @Matches(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/, { message: 'username is not a valid user name' })
  username!: string;

  @ApiPropertyOptional({ description: 'the new password (never logged or audited)' })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  password?: string;

  @ApiPropertyOptional({ description: 'a crypt(3) hash such as $6$salt$hash, set as is' })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  crypted_hash?: string;
}
