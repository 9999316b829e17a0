import { describe, expect, it } from 'vitest';
import { joinPath, nameProblem, normalisePath, parentOf, pathProblem } from './vm-files-tab';
import { formatOffset } from './vm-agent-tab';
import { formatCountdown, parseMountPoints } from '../components/quiesce-panel';
import { passwordProblem } from '../components/password-dialog';
import { UserMessage } from '../api/errors';

describe('file browser paths', () => {
  it('should join, climb and normalise guest paths', () => {
    expect(joinPath('/', 'etc')).toBe('/etc');
    expect(joinPath('/var/log', 'syslog')).toBe('/var/log/syslog');
    expect(parentOf('/var/log')).toBe('/var');
    expect(parentOf('/var')).toBe('/');
    expect(parentOf('/')).toBe('/');
    expect(normalisePath('//var/./log/')).toBe('/var/log');
    expect(pathProblem('var')).toMatch(/absolute/);
  });

  it('should refuse names with a slash or that are dots', () => {
    expect(nameProblem('a/b')).toMatch(/“\/”/);
    expect(nameProblem('..')).toBeDefined();
    expect(nameProblem('report.txt')).toBeUndefined();
  });
});

describe('agent tab helpers', () => {
  it('should count down in minutes and seconds', () => {
    expect(formatCountdown(65_000)).toBe('1 min 05 s');
    expect(formatCountdown(900)).toBe('1 s');
    expect(formatCountdown(0)).toBe('now');
  });

  it('should read mount points and refuse relative ones', () => {
    expect(parseMountPoints(' /, /var/lib/data ')).toEqual(['/', '/var/lib/data']);
    expect(parseMountPoints('')).toEqual([]);
    expect(parseMountPoints('/ data')).toBeInstanceOf(UserMessage);
  });

  it('should want the password twice and a valid user name', () => {
    expect(passwordProblem('alice', 'pw', 'pw')).toBeUndefined();
    expect(passwordProblem('alice', 'pw', 'px')).toBe('The two passwords differ.');
    expect(passwordProblem('bad name', 'pw', 'pw')).toMatch(/user’s name/);
    expect(passwordProblem('alice', '', '')).toMatch(/new password/);
  });

  it('should show clock offsets with a sign', () => {
    expect(formatOffset(12.4)).toBe('+12 ms');
    expect(formatOffset(-3400)).toBe('−3.4 s');
    expect(formatOffset(null)).toBe('unknown');
  });
});
