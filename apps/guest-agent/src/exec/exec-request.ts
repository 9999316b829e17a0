import { isAbsolute } from 'node:path';
import { ErrorCode, firstUnsafeRunAsEnv, type ExecuteRequest } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';

// The checks of an ExecuteRequest that need nothing but its fields and the config: the first
// step of ProcessRunner.run, before any user lookup or process.

export function invalid(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.INVALID_REQUEST, message);
}

/** Checks the request's fields against the config; throws INVALID_REQUEST / TOO_LARGE. */
export function validateExecuteRequest(
  request: ExecuteRequest,
  config: AgentConfig,
): { timeoutMs: number; outputLimit: number } {
  const hasArgv = request.argv.length > 0;
  const hasCommand = request.command !== '';
  if (hasArgv === hasCommand) {
    throw invalid(
      `exactly one of argv or command must be set (got ${hasArgv ? 'both' : 'neither'})`,
    );
  }
  if (hasArgv && request.argv[0] === '') {
    throw invalid('argv[0] must name a program');
  }
  request.argv.forEach((arg, i) => {
    if (arg.includes('\0')) {
      throw invalid(`argv[${i}] contains a NUL byte`);
    }
  });
  if (request.command.includes('\0')) {
    throw invalid('command contains a NUL byte');
  }
  if (request.cwd !== '' && (!isAbsolute(request.cwd) || request.cwd.includes('\0'))) {
    throw invalid(`cwd must be an absolute path (got ${JSON.stringify(request.cwd)})`);
  }
  let envBytes = 0;
  for (const [key, value] of Object.entries(request.env)) {
    if (key === '' || key.includes('=') || key.includes('\0')) {
      throw invalid(
        `env key ${JSON.stringify(key)} is invalid: keys are non-empty, without "=" or NUL`,
      );
    }
    if (value.includes('\0')) {
      throw invalid(`env ${key} contains a NUL byte`);
    }
    envBytes += Buffer.byteLength(key) + Buffer.byteLength(value) + 2;
  }
  if (request.runAsUser !== '' || request.runAsGroup !== '') {
    const unsafe = firstUnsafeRunAsEnv(Object.keys(request.env));
    if (unsafe !== undefined) {
      throw invalid(
        `env ${unsafe} is refused with run_as_user/run_as_group: it steers the loader or libc of programs that start as root`,
      );
    }
  }
  if (envBytes > config.exec.max_env_bytes) {
    throw new AgentOpError(
      ErrorCode.TOO_LARGE,
      `env is ${envBytes} bytes, above exec.max_env_bytes ${config.exec.max_env_bytes}`,
    );
  }
  if (request.stdin.length > config.exec.max_stdin_bytes) {
    throw new AgentOpError(
      ErrorCode.TOO_LARGE,
      `stdin is ${request.stdin.length} bytes, above exec.max_stdin_bytes ${config.exec.max_stdin_bytes}`,
    );
  }
  const timeoutMs = request.timeoutMs === 0 ? config.exec.default_timeout_ms : request.timeoutMs;
  if (timeoutMs > config.exec.max_timeout_ms) {
    throw invalid(
      `timeout_ms ${timeoutMs} exceeds exec.max_timeout_ms ${config.exec.max_timeout_ms}`,
    );
  }
  const outputLimit =
    request.outputLimitBytes === 0 ? config.exec.output_limit_bytes : request.outputLimitBytes;
  if (outputLimit > config.exec.output_limit_max_bytes) {
    throw invalid(
      `output_limit_bytes ${outputLimit} exceeds exec.output_limit_max_bytes ${config.exec.output_limit_max_bytes}`,
    );
  }
  return { timeoutMs, outputLimit };
}
