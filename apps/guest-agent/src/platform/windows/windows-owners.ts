// Owners of files on a Windows guest, from their security descriptors (WINDOWS.md, "Files"):
// what file.stat and file.list report as `owner` and `group`. One PowerShell process answers a
// whole listing page: the paths go in on stdin, one per line, each base64 of its UTF-8 (so no
// code page, quoting or odd character can change a path), and for each the script writes
//   <n> TAB <owner SID> TAB <owner name, base64 of UTF-8> TAB <group SID> TAB <group name, base64>
// or, when the file's ACL could not be read,
//   <n> TAB ! TAB <the error, base64 of UTF-8>
// Names come from SecurityIdentifier.Translate(NTAccount) — "DOMAIN\user", "BUILTIN\
// Administrators", in the guest's language ("VORDEFINIERT\Administratoren") — and are empty for
// a SID with no account (a deleted user, another domain's SID): the agent then reports the SID.
// base64 keeps the output ASCII whatever PowerShell's console encoding (OEM code page on 5.1).
// The lookup is bounded in time and in output; it never throws to its callers: a failure
// leaves the names empty and is logged once, naming what failed (PowerShell missing included).
import { spawn } from 'node:child_process';
import { ErrorCode } from '@lq/proto';
import type { AgentConfig } from '../../config/agent-config.js';
import { AgentOpError } from '../../errors.js';
import type { FileOwner, FileOwnerSource } from '../../files/file-owners.js';
import type { Logger } from '../../logger.js';

/** A name longer than this is cut (Windows account names are at most 256 + 1 + 15 characters). */
export const MAX_OWNER_CHARS = 300;

/** The PowerShell 5.1 (and 7) script: base64 paths on stdin, one result line per path. */
export const OWNER_SCRIPT = `$ErrorActionPreference = 'Stop'
$utf8 = New-Object System.Text.UTF8Encoding $false
$names = @{}
function Name-Of($sid) {
  if ($null -eq $sid) { return '' }
  $key = $sid.Value
  if (-not $names.ContainsKey($key)) {
    try { $names[$key] = $sid.Translate([System.Security.Principal.NTAccount]).Value } catch { $names[$key] = '' }
  }
  return $names[$key]
}
function B64($s) { return [Convert]::ToBase64String($utf8.GetBytes([string]$s)) }
$sidType = [System.Security.Principal.SecurityIdentifier]
$out = [Console]::Out
$n = 0
foreach ($line in ([Console]::In.ReadToEnd() -split "\`n")) {
  $line = $line.Trim()
  if ($line -eq '') { continue }
  $n++
  try {
    $p = $utf8.GetString([Convert]::FromBase64String($line))
    $acl = Get-Acl -LiteralPath $p
    $o = $acl.GetOwner($sidType)
    $g = $acl.GetGroup($sidType)
    $os = if ($null -eq $o) { '' } else { $o.Value }
    $gs = if ($null -eq $g) { '' } else { $g.Value }
    $out.Write("$n\`t$os\`t$(B64 (Name-Of $o))\`t$gs\`t$(B64 (Name-Of $g))\`n")
  } catch {
    $out.Write("$n\`t!\`t$(B64 $_.Exception.Message)\`n")
  }
}
$out.Flush()
`;

const SID = /^S-1-[0-9]+(-[0-9]+){0,15}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The paths as the script reads them: base64 of UTF-8, one a line. */
export function ownerScriptInput(paths: readonly string[]): string {
  return paths.map((p) => `${Buffer.from(p, 'utf8').toString('base64')}\n`).join('');
}

function decodeName(field: string | undefined): string | undefined {
  if (field === undefined || !BASE64.test(field)) {
    return undefined;
  }
  const name = Buffer.from(field, 'base64').toString('utf8');
  // eslint-disable-next-line no-control-regex -- account names hold no control characters
  if (name.includes('\uFFFD') || /[\x00-\x1f\x7f]/.test(name)) {
    return undefined;
  }
  return name.length > MAX_OWNER_CHARS ? name.slice(0, MAX_OWNER_CHARS) : name;
}

/** The account's name, or its SID when it has none; '' when the line holds neither. */
function nameOrSid(sid: string | undefined, name: string | undefined): string {
  if (name) {
    return name;
  }
  return sid !== undefined && SID.test(sid) ? sid : '';
}

export interface ParsedOwners {
  owners: FileOwner[];
  /** Paths whose ACL could not be read, by index, with PowerShell's message. */
  errors: { index: number; message: string }[];
}

/**
 * The script's output for `count` paths: owner and group names by path (in input order), ''
 * where the line is missing, malformed or an error. Tolerates CRLF, a byte-order mark, lines
 * PowerShell printed besides, and output cut short.
 */
export function parseOwnerOutput(stdout: string, count: number): ParsedOwners {
  const owners: FileOwner[] = Array.from({ length: count }, () => ({ owner: '', group: '' }));
  const errors: ParsedOwners['errors'] = [];
  for (const raw of stdout.replace(/^\uFEFF/, '').split('\n')) {
    const fields = raw.replace(/\r$/, '').split('\t');
    const n = Number(fields[0]);
    if (!/^[0-9]+$/.test(fields[0] ?? '') || n < 1 || n > count) {
      continue;
    }
    if (fields[1] === '!') {
      errors.push({ index: n - 1, message: decodeName(fields[2]) ?? '' });
      continue;
    }
    if (fields.length !== 5) {
      continue;
    }
    owners[n - 1] = {
      owner: nameOrSid(fields[1], decodeName(fields[2])),
      group: nameOrSid(fields[3], decodeName(fields[4])),
    };
  }
  return { owners, errors };
}

export interface OwnerLookupOptions {
  powershell: string;
  timeoutMs: number;
  maxOutputBytes: number;
}

export function ownerLookupOptions(config: AgentConfig): OwnerLookupOptions {
  return {
    powershell: config.windows.powershell,
    timeoutMs: config.windows.owner_timeout_ms,
    maxOutputBytes: config.windows.owner_max_output_bytes,
  };
}

/**
 * Runs the script for `paths` and parses its answer. Throws an AgentOpError naming what failed:
 * PowerShell missing or not startable, the time or output bound reached, a non-zero exit with
 * nothing parsed.
 */
export function lookupOwners(
  paths: readonly string[],
  options: OwnerLookupOptions,
): Promise<ParsedOwners> {
  if (paths.length === 0) {
    return Promise.resolve({ owners: [], errors: [] });
  }
  const fail = (why: string) =>
    new AgentOpError(ErrorCode.INTERNAL, `reading file owners with ${options.powershell}: ${why}`);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let settled = false;
    const finish = (err: AgentOpError | undefined, result?: ParsedOwners) => {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (err) {
        child.kill();
        reject(err);
      } else {
        resolve(result!);
      }
    };
    const encoded = Buffer.from(OWNER_SCRIPT, 'utf16le').toString('base64');
    const child = spawn(
      options.powershell,
      ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand', encoded],
      { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true },
    );
    const timer = setTimeout(
      () =>
        finish(
          fail(
            `no answer within windows.owner_timeout_ms (${options.timeoutMs} ms) for ${paths.length} paths`,
          ),
        ),
      options.timeoutMs,
    );
    child.on('error', (err: NodeJS.ErrnoException) =>
      finish(
        fail(
          err.code === 'ENOENT'
            ? 'PowerShell was not found (set windows.powershell, or windows.owner_lookup false to report no owners)'
            : `PowerShell could not be started: ${err.message}`,
        ),
      ),
    );
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes > options.maxOutputBytes) {
        finish(
          fail(
            `its output passed windows.owner_max_output_bytes (${options.maxOutputBytes}) for ${paths.length} paths`,
          ),
        );
        return;
      }
      chunks.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) {
        stderr += d.toString('utf8');
      }
    });
    child.on('close', (code) => {
      const parsed = parseOwnerOutput(Buffer.concat(chunks).toString('utf8'), paths.length);
      if (code !== 0 && parsed.owners.every((o) => o.owner === '')) {
        finish(
          fail(
            `exit code ${code}: ${stderr.trim().split(/\r?\n/)[0]?.slice(0, 200) ?? ''}`.trimEnd(),
          ),
        );
        return;
      }
      finish(undefined, parsed);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(ownerScriptInput(paths));
  });
}

/** The Windows owner source: lookupOwners, failures logged (each distinct message once). */
export class WindowsOwners implements FileOwnerSource {
  private readonly warned = new Set<string>();

  constructor(
    private readonly options: OwnerLookupOptions,
    private readonly log?: Logger,
  ) {}

  async ownersOf(paths: readonly string[]): Promise<FileOwner[]> {
    try {
      return (await lookupOwners(paths, this.options)).owners;
    } catch (err) {
      const message = (err as Error).message;
      if (!this.warned.has(message) && this.warned.size < 32) {
        this.warned.add(message);
        this.log?.warn('file owners unavailable; reported empty', { error: message });
      }
      return paths.map(() => ({ owner: '', group: '' }));
    }
  }
}
