// The Windows owner lookup: the parsing of the script's output (a fixture in its format, with
// English, German, Russian and Japanese account names, a domain account, SIDs without a name,
// an ACL that could not be read, stray lines), and the runner's bounds, with POSIX shell
// scripts standing in for powershell.exe (the runner is the same on both).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ErrorCode } from '@lq/proto';
import type { Logger } from '../../logger.js';
import {
  OWNER_SCRIPT,
  WindowsOwners,
  lookupOwners,
  ownerScriptInput,
  parseOwnerOutput,
  type OwnerLookupOptions,
} from './windows-owners.js';

const fixture = readFileSync(new URL('./__fixtures__/owners-get-acl.txt', import.meta.url), 'utf8');

describe('parseOwnerOutput', () => {
  it('should name owners and groups by path, in the language of the guest', () => {
    const { owners, errors } = parseOwnerOutput(fixture, 9);
    expect(owners).toEqual([
      { owner: 'BUILTIN\\Administrators', group: 'NT AUTHORITY\\SYSTEM' },
      { owner: 'CONTOSO\\j.doe', group: 'CONTOSO\\Domain Users' },
      { owner: 'VORDEFINIERT\\Administratoren', group: 'NT-AUTORITÄT\\SYSTEM' },
      { owner: 'BUILTIN\\Администраторы', group: 'NT AUTHORITY\\СИСТЕМА' },
      // A SID no account has (a deleted local user): the SID itself.
      {
        owner: 'S-1-5-21-1004336348-1177238915-682003330-1001',
        group: 'S-1-5-21-1004336348-1177238915-682003330-513',
      },
      // The ACL could not be read.
      { owner: '', group: '' },
      {
        owner: 'NT SERVICE\\TrustedInstaller',
        group: 'APPLICATION PACKAGE AUTHORITY\\ALL APPLICATION PACKAGES',
      },
      { owner: 'WIN-7QK2M\\山田 太郎', group: 'WIN-7QK2M\\なし' },
      // Cut short: nothing is made up.
      { owner: '', group: '' },
    ]);
    expect(errors).toEqual([
      { index: 5, message: 'Attempted to perform an unauthorized operation.' },
    ]);
  });

  it('should take a byte-order mark, LF or CRLF, and ignore what is not a result', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const line = `1\tS-1-5-32-544\t${b64('BUILTIN\\Administrators')}\tS-1-5-18\t`;
    for (const out of [`\uFEFF${line}\n`, `${line}\r\n`, `noise\n${line}`]) {
      expect(parseOwnerOutput(out, 1).owners).toEqual([
        { owner: 'BUILTIN\\Administrators', group: 'S-1-5-18' },
      ]);
    }
    // Out of range, not numbered, a field that is no SID or no base64, a control character.
    const bad = [
      `0\tS-1-5-18\t\tS-1-5-18\t`,
      `2\tS-1-5-18\t\tS-1-5-18\t`,
      `x\tS-1-5-18\t\tS-1-5-18\t`,
      `1\tnot-a-sid\t\tS-1-5-18\t`,
      `1\tS-1-5-18\t!!\tS-1-5-18\t`,
      `1\tS-1-5-18\t${b64('a\nb')}\tS-1-5-18\t`,
    ];
    expect(parseOwnerOutput(bad.slice(0, 3).join('\n'), 1).owners).toEqual([
      { owner: '', group: '' },
    ]);
    expect(parseOwnerOutput(bad[3]!, 1).owners).toEqual([{ owner: '', group: 'S-1-5-18' }]);
    // A name that does not decode falls back to the SID.
    expect(parseOwnerOutput(bad[4]!, 1).owners[0]!.owner).toBe('S-1-5-18');
    expect(parseOwnerOutput(bad[5]!, 1).owners[0]!.owner).toBe('S-1-5-18');
  });

  it('should cut a name longer than any account name', () => {
    const long = Buffer.from(`D\\${'x'.repeat(1000)}`).toString('base64');
    expect(parseOwnerOutput(`1\tS-1-5-18\t${long}\tS-1-5-18\t`, 1).owners[0]!.owner).toHaveLength(
      300,
    );
  });
});

describe('the owner script', () => {
  it('should read base64 paths and write base64 names, so no code page can change them', () => {
    expect(ownerScriptInput(['C:\\Users\\Jürgen\\ä b.txt', 'C:\\x'])).toBe(
      `${Buffer.from('C:\\Users\\Jürgen\\ä b.txt').toString('base64')}\nQzpceA==\n`,
    );
    expect(OWNER_SCRIPT).toContain('Get-Acl -LiteralPath $p');
    expect(OWNER_SCRIPT).toContain('[System.Security.Principal.NTAccount]');
    expect(OWNER_SCRIPT).toContain('FromBase64String');
    // Nothing of the template literal leaked into the PowerShell text.
    expect(OWNER_SCRIPT).not.toContain('\\`');
    expect(OWNER_SCRIPT).toContain('"$n`t!`t');
  });
});

describe('lookupOwners (POSIX stand-ins for powershell.exe)', () => {
  let dir: string;
  const script = (name: string, body: string): string => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };
  const options = (powershell: string, more: Partial<OwnerLookupOptions> = {}) => ({
    powershell,
    timeoutMs: 10_000,
    maxOutputBytes: 1024 * 1024,
    ...more,
  });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-owners-'));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('should send every path and map each answer back to it', async () => {
    // Answers each path with its own name as the owner, and a SID without a name as group.
    const echo = script(
      'echo-ps',
      `n=0
while IFS= read -r line; do
  n=$((n+1))
  printf '%s\\tS-1-5-32-544\\t%s\\tS-1-5-18\\t\\r\\n' "$n" "$(printf %s "$line" | base64 -d | base64 -w0)"
done`,
    );
    const paths = ['C:\\a', 'C:\\Users\\Jürgen\\日本語 ファイル.txt', 'C:\\tab\there'];
    const { owners } = await lookupOwners(paths, options(echo));
    expect(owners).toEqual([
      { owner: 'C:\\a', group: 'S-1-5-18' },
      { owner: 'C:\\Users\\Jürgen\\日本語 ファイル.txt', group: 'S-1-5-18' },
      // A tab is no account name's: the SID stands in.
      { owner: 'S-1-5-32-544', group: 'S-1-5-18' },
    ]);
  });

  it('should parse the fixture output when PowerShell prints it', async () => {
    const fixtureFile = join(dir, 'fixture.txt');
    writeFileSync(fixtureFile, fixture);
    const cat = script('cat-ps', `cat >/dev/null; cat '${fixtureFile}'`);
    const { owners } = await lookupOwners(
      Array.from({ length: 9 }, (_, i) => `C:\\f${i}`),
      options(cat),
    );
    expect(owners[2]).toEqual({
      owner: 'VORDEFINIERT\\Administratoren',
      group: 'NT-AUTORITÄT\\SYSTEM',
    });
  });

  it('should say clearly when PowerShell is missing', async () => {
    await expect(
      lookupOwners(['C:\\a'], options(join(dir, 'no-such-powershell'))),
    ).rejects.toMatchObject({
      code: ErrorCode.INTERNAL,
      message: expect.stringMatching(/PowerShell was not found \(set windows\.powershell/),
    });
  });

  it('should give up at windows.owner_timeout_ms, naming the setting', async () => {
    const slow = script('slow-ps', 'exec sleep 30');
    await expect(lookupOwners(['C:\\a'], options(slow, { timeoutMs: 200 }))).rejects.toMatchObject({
      message: expect.stringContaining('windows.owner_timeout_ms (200 ms)'),
    });
  });

  it('should give up at windows.owner_max_output_bytes, naming the setting', async () => {
    const flood = script('flood-ps', 'cat >/dev/null; exec yes 1');
    await expect(
      lookupOwners(['C:\\a'], options(flood, { maxOutputBytes: 4096 })),
    ).rejects.toMatchObject({
      message: expect.stringContaining('windows.owner_max_output_bytes (4096)'),
    });
  });

  it('should report a failed run with its exit code and first line of stderr', async () => {
    const broken = script(
      'broken-ps',
      "cat >/dev/null; echo 'Get-Acl : not recognized' >&2; exit 1",
    );
    await expect(lookupOwners(['C:\\a'], options(broken))).rejects.toMatchObject({
      message: expect.stringContaining('exit code 1: Get-Acl : not recognized'),
    });
  });

  it('should leave names empty when the lookup fails, and log why once', async () => {
    const lines: string[] = [];
    const log = {
      warn: (msg: string, fields?: Record<string, unknown>) =>
        lines.push(`${msg} ${JSON.stringify(fields)}`),
    } as unknown as Logger;
    const source = new WindowsOwners(options(join(dir, 'no-such-powershell')), log);
    expect(await source.ownersOf(['C:\\a', 'C:\\b'])).toEqual([
      { owner: '', group: '' },
      { owner: '', group: '' },
    ]);
    await source.ownersOf(['C:\\c']);
    expect(lines.filter((l) => l.includes('PowerShell was not found'))).toHaveLength(1);
  });
});
