import { readFileSync } from 'node:fs';
import { defaultConfig, type AgentConfig } from './config/agent-config.js';
import { OPERATIONS, type OperationName } from './config/operations.js';
import { ConfigError, applyShape } from './config/rules.js';
import { SHAPE, checkRelations } from './config/settings-shape.js';
import { PLATFORM_DEFAULTS, type PlatformDefaults } from './platform/platform-defaults.js';

export { defaultConfig, type AgentConfig } from './config/agent-config.js';
export { OPERATIONS, type OperationName } from './config/operations.js';
export { ConfigError } from './config/rules.js';

/** Where this OS keeps the config and the virtio-serial port (platform/platform-defaults.ts). */
export const DEFAULT_CONFIG_PATH = PLATFORM_DEFAULTS.configPath;
export const DEFAULT_DEVICE_PATH = PLATFORM_DEFAULTS.devicePath;

/** The built-in settings of this OS (the shared defaults with the platform's over them). */
export function platformDefaultConfig(platform: PlatformDefaults = PLATFORM_DEFAULTS): AgentConfig {
  return platform.apply(defaultConfig());
}

/** Validates a parsed config object over the defaults; throws ConfigError naming the setting. */
export function parseConfig(
  input: unknown,
  source: string,
  platform: PlatformDefaults = PLATFORM_DEFAULTS,
): AgentConfig {
  const config = platformDefaultConfig(platform);
  config.source = source;
  try {
    applyShape(config as unknown as Record<string, unknown>, input, SHAPE, '');
    checkRelations(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ConfigError(`${source}: ${err.message}`);
    }
    throw err;
  }
  return config;
}

/**
 * Loads the config file. A missing file at the default path means built-in defaults; a missing
 * file named explicitly, unreadable JSON or an invalid setting is an error.
 */
export function loadConfig(path: string | undefined): AgentConfig {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && path === undefined) {
      return platformDefaultConfig();
    }
    throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(parsed, file);
}

export function enabledOperations(c: AgentConfig): OperationName[] {
  return OPERATIONS.filter((op) => operationBlockedBy(c, op) === null);
}

/** Names the policy key that blocks an operation, or null when it is allowed. */
export function operationBlockedBy(c: AgentConfig, op: OperationName): string | null {
  if (c.policy.blocked_operations.includes(op)) {
    return 'policy.blocked_operations';
  }
  if (c.policy.allowed_operations !== null && !c.policy.allowed_operations.includes(op)) {
    return 'policy.allowed_operations';
  }
  return null;
}
