import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';
import { ROLES } from '@lq/auth';

export class LoginDto {
  @ApiProperty({ example: 'alice' })
  @IsString()
  @MaxLength(64)
  username!: string;

  @ApiProperty()
  @IsString()
  @MaxLength(1024)
  password!: string;
}

export class RefreshDto {
  @ApiProperty({ description: 'the refresh_token of a login or an earlier refresh (used once)' })
  @IsString()
  @MaxLength(200)
  refresh_token!: string;
}

export class ChangePasswordDto {
  @ApiProperty()
  @IsString()
  @MaxLength(1024)
  current_password!: string;

  @ApiProperty({ description: 'at least 12 characters' })
  @IsString()
  @MinLength(12)
  @MaxLength(1024)
  new_password!: string;
}

export class CreateUserDto {
  @ApiProperty({ example: 'alice', description: 'letters, digits, _ . @ -; up to 64' })
  @Matches(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, {
    message: 'username must be 1-64 letters, digits, _ . @ or -, starting with a letter or digit',
  })
  username!: string;

  @ApiPropertyOptional({
    description: 'at least 12 characters; without one the user signs in with API keys only',
  })
  @IsOptional()
  @IsString()
  @MinLength(12)
  @MaxLength(1024)
  password?: string;
}

export class UpdateUserDto {
  @ApiPropertyOptional({ description: 'a new password (12+ characters)' })
  @IsOptional()
  @IsString()
  @MinLength(12)
  @MaxLength(1024)
  password?: string;

  @ApiPropertyOptional({ description: 'a disabled user cannot sign in and its keys stop working' })
  @IsOptional()
  @IsBoolean()
  disabled?: boolean;
}

export class CreateApiKeyDto {
  @ApiPropertyOptional({ example: 'ci-pipeline' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  name?: string;

  @ApiPropertyOptional({ description: 'days until the key expires; omitted: never', example: 90 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3650)
  expires_in_days?: number;
}

export class CreateProjectDto {
  @ApiProperty({ example: 'payments', description: 'a-z, 0-9 and -, up to 63' })
  @Matches(/^[a-z0-9][a-z0-9-]{0,62}$/, {
    message: 'id must be 1-63 of a-z, 0-9 and -, starting with a letter or digit',
  })
  id!: string;

  @ApiPropertyOptional({ example: 'Payments team' })
  @IsOptional()
  @IsString()
  @MaxLength(256)
  name?: string;
}

export class CreateBindingDto {
  @ApiProperty({ description: 'user id or username' })
  @IsString()
  @MaxLength(64)
  user!: string;

  @ApiProperty({ enum: ROLES })
  @IsIn([...ROLES])
  role!: string;

  @ApiPropertyOptional({ description: 'project id; omitted: every project (a global binding)' })
  @IsOptional()
  @IsString()
  @MaxLength(63)
  project?: string;

  @ApiPropertyOptional({
    description: 'limits on top of the role: {"exec_non_root": true} or {"exec_users": ["deploy"]}',
  })
  @IsOptional()
  @IsObject()
  restrictions?: Record<string, unknown>;
}
