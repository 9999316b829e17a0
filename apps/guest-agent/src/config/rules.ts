// The building blocks of config validation: each rule checks one value and names the setting
// in its error; applyShape walks a parsed object against a tree of rules.
import { HOST_OS } from '../os/host-os.js';
import { isAbsoluteWindowsPath } from '../os/windows-absolute.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type Shape = { [key: string]: Rule | Shape };
export type Rule = (value: unknown, name: string) => unknown;

export const int =
  (min: number, max: number): Rule =>
  (v, name) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(
        `${name} must be an integer between ${min} and ${max} (got ${JSON.stringify(v)})`,
      );
    }
    return v;
  };

/** An absolute path as this guest's OS spells it: `/…`, or on Windows also `C:\…`. */
export const absPath: Rule = (v, name) => {
  if (
    typeof v !== 'string' ||
    !(v.startsWith('/') || (HOST_OS === 'windows' && isAbsoluteWindowsPath(v)))
  ) {
    throw new ConfigError(`${name} must be an absolute path (got ${JSON.stringify(v)})`);
  }
  return v;
};

/** An absolute Windows path (the windows.* settings, on any OS: they are only used there). */
export const windowsPath: Rule = (v, name) => {
  if (typeof v !== 'string' || !isAbsoluteWindowsPath(v)) {
    throw new ConfigError(
      `${name} must be an absolute Windows path like C:\\Windows\\System32\\cmd.exe (got ${JSON.stringify(v)})`,
    );
  }
  return v;
};

export const boolean: Rule = (v, name) => {
  if (typeof v !== 'boolean') {
    throw new ConfigError(`${name} must be true or false (got ${JSON.stringify(v)})`);
  }
  return v;
};

export const nonEmptyString: Rule = (v, name) => {
  if (typeof v !== 'string' || v.length === 0) {
    throw new ConfigError(`${name} must be a non-empty string (got ${JSON.stringify(v)})`);
  }
  return v;
};

export const command: Rule = (v, name) => {
  if (!Array.isArray(v) || v.length === 0 || v.some((a) => typeof a !== 'string')) {
    throw new ConfigError(`${name} must be a non-empty array of strings (program and arguments)`);
  }
  absPath(v[0], `${name}[0]`);
  return v as string[];
};

export const stringList =
  (check?: Rule): Rule =>
  (v, name) => {
    if (!Array.isArray(v)) {
      throw new ConfigError(`${name} must be an array of strings`);
    }
    return (v as unknown[]).map((item, i) =>
      check ? check(item, `${name}[${i}]`) : nonEmptyString(item, `${name}[${i}]`),
    );
  };

export const oneOf =
  (values: readonly string[]): Rule =>
  (v, name) => {
    if (!values.includes(v as string)) {
      throw new ConfigError(
        `${name} must be one of ${values.join(', ')} (got ${JSON.stringify(v)})`,
      );
    }
    return v;
  };

export const base64Key: Rule = (v, name) => {
  if (typeof v !== 'string' || Buffer.from(v, 'base64').length !== 32) {
    throw new ConfigError(`${name} must be a base64 Ed25519 public key of 32 bytes`);
  }
  return v;
};

export function applyShape(
  target: Record<string, unknown>,
  input: unknown,
  shape: Shape,
  prefix: string,
): void {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(`${prefix || 'the config'} must be a JSON object`);
  }
  for (const [key, value] of Object.entries(input)) {
    const name = prefix ? `${prefix}.${key}` : key;
    const rule = shape[key];
    if (rule === undefined) {
      throw new ConfigError(`unknown setting ${name} (known: ${Object.keys(shape).join(', ')})`);
    }
    if (typeof rule === 'function') {
      target[key] = rule(value, name);
    } else {
      applyShape(target[key] as Record<string, unknown>, value, rule, name);
    }
  }
}
