import { describe, expect, it } from '@jest/globals';
import { ConfigError, defaultConfig, parseConfig } from '../config.js';
import { SHAPE } from './settings-shape.js';
import type { Shape } from './rules.js';

/** Dotted names of the leaves of a settings object (arrays and null are leaves). */
function leaves(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? leaves(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k}`],
  );
}

/** The settings a config file holds: all but `source`, which says where they came from. */
function settingsOf(c: ReturnType<typeof defaultConfig>): Record<string, unknown> {
  const o: Record<string, unknown> = { ...c };
  delete o.source;
  return o;
}

function ruleNames(shape: Shape, prefix = ''): string[] {
  return Object.entries(shape).flatMap(([k, v]) =>
    typeof v === 'function' ? [`${prefix}${k}`] : ruleNames(v, `${prefix}${k}.`),
  );
}

describe('agent settings', () => {
  it('should have a validation rule for every default setting, and a default for every rule', () => {
    expect(ruleNames(SHAPE).sort()).toEqual(leaves(settingsOf(defaultConfig())).sort());
  });

  it('should accept its own defaults written out as a config file', () => {
    const written = JSON.parse(JSON.stringify(settingsOf(defaultConfig()))) as unknown;
    const parsed = parseConfig(written, 'defaults.json');
    expect({ ...parsed, source: '' }).toEqual({ ...defaultConfig(), source: '' });
  });

  it('should name the file and the setting of a bad value, and refuse unknown settings', () => {
    expect(() => parseConfig({ exec: { max_timeout_ms: -1 } }, 'a.json')).toThrow(
      /^a\.json: exec\.max_timeout_ms must be an integer between/,
    );
    expect(() => parseConfig({ exec: { max_timout_ms: 5 } }, 'a.json')).toThrow(
      /unknown setting exec\.max_timout_ms/,
    );
    expect(() => parseConfig({ exec: { max_timout_ms: 5 } }, 'a.json')).toThrow(ConfigError);
  });

  it('should refuse settings that contradict each other, naming both', () => {
    expect(() =>
      parseConfig({ exec: { default_timeout_ms: 20_000, max_timeout_ms: 10_000 } }, 'a.json'),
    ).toThrow(/exec\.default_timeout_ms must not exceed exec\.max_timeout_ms/);
  });
});
