import { ApiPropertyOptional } from '@nestjs/swagger';
import { VmGuestErrorCode, VmGuestException } from '../vm-guest.exception.js';
import type { ExecuteInput } from '../operations/execute.operation.js';
import type { ExecuteBody } from '@lq/api';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';

/** POST /api/vms/:id/execute (the seed's §7.2 fields; snake_case as in its examples). */
export class ExecuteDto implements ExecuteBody {
  @ApiPropertyOptional({
    description: 'shell command line (run by /bin/sh -c); exclusive with argv',
    example: 'whoami && id',
  })
  @IsOptional()
  @IsString()
  @MaxLength(65_536)
  command?: string;

  @ApiPropertyOptional({
    description: 'program and arguments, no shell',
    type: [String],
    example: ['uname', '-a'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(4096)
  @IsString({ each: true })
  argv?: string[];

  @ApiPropertyOptional({ description: 'extra arguments appended to argv', type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(4096)
  @IsString({ each: true })
  args?: string[];

  @ApiPropertyOptional({
    description: 'extra environment variables',
    type: 'object',
    additionalProperties: { type: 'string' },
  })
  @IsOptional()
  @IsObject()
  env?: Record<string, string>;

  @ApiPropertyOptional({ description: 'absolute working directory in the guest' })
  @IsOptional()
  @IsString()
  @MaxLength(4096)
  cwd?: string;

  @ApiPropertyOptional({ description: 'text for the command’s stdin' })
  @IsOptional()
  @IsString()
  stdin?: string;

  @ApiPropertyOptional({ description: 'stdin as base64 (binary input); exclusive with stdin' })
  @IsOptional()
  @IsString()
  stdin_base64?: string;

  @ApiPropertyOptional({
    description:
      'kill the command after this many seconds; default LQ_GUEST_TIMEOUT_SECONDS (30) for POST /execute, LQ_EXEC_ASYNC_TIMEOUT_SECONDS (3600) for executions and runs; at most LQ_GUEST_TIMEOUT_MAX_SECONDS (3600)',
    minimum: 1,
    maximum: 86_400,
    example: 30,
  })
  @IsOptional()
  // class-validator checks the lowest decorator first: the type before the bound.
  @Min(1, { message: 'timeout_seconds must be at least 1' })
  @IsInt({ message: 'timeout_seconds must be a whole number of seconds' })
  timeout_seconds?: number;

  @ApiPropertyOptional({ description: 'run as this user (name or uid)', example: 'postgres' })
  @IsOptional()
  @IsString()
  @MaxLength(256)
  run_as_user?: string;

  @ApiPropertyOptional({ description: 'run with this group (default: the user’s primary group)' })
  @IsOptional()
  @IsString()
  @MaxLength(256)
  run_as_group?: string;

  @ApiPropertyOptional({ description: 'keep the user’s supplementary groups' })
  @IsOptional()
  @IsBoolean()
  include_supplementary_groups?: boolean;

  @ApiPropertyOptional({ description: 'per-stream capture cap in bytes (0: the agent’s default)' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(64 * 1024 * 1024)
  output_limit_bytes?: number;

  @ApiPropertyOptional({
    type: [String],
    description:
      'names of env entries whose values are secrets (each must be in env). The audit trail keeps only the names of env entries, every value "[redacted]", so this is a statement of intent for readers of the request',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(256)
  @IsString({ each: true })
  secret_env?: string[];
}

/** The service's input from the DTO: stdin as text or base64 (not both), env values strings. */
export function toExecuteInput(body: ExecuteDto): ExecuteInput {
  if (body.stdin !== undefined && body.stdin_base64 !== undefined) {
    throw new VmGuestException(
      VmGuestErrorCode.INVALID_REQUEST,
      'give stdin or stdin_base64, not both',
    );
  }
  const stdin =
    body.stdin_base64 !== undefined
      ? Buffer.from(body.stdin_base64, 'base64')
      : body.stdin !== undefined
        ? Buffer.from(body.stdin, 'utf8')
        : undefined;
  for (const [k, v] of Object.entries(body.env ?? {})) {
    if (typeof v !== 'string') {
      throw new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, `env.${k} must be a string`);
    }
  }
  return {
    command: body.command,
    argv: body.argv,
    args: body.args,
    env: body.env,
    cwd: body.cwd,
    stdin,
    timeoutSeconds: body.timeout_seconds,
    runAsUser: body.run_as_user,
    runAsGroup: body.run_as_group,
    includeSupplementaryGroups: body.include_supplementary_groups,
    outputLimitBytes: body.output_limit_bytes,
    secretEnv: body.secret_env,
  };
}
