// The lexical path rules on a Windows guest: what the Linux rules (files/path-policy.ts) say for
// "/", said for drive letters. A path is absolute (`C:\…`), normalised (backslashes, no "." or
// ".." segments, no empty segment, no trailing separator but a drive's root), and free of what
// Windows rewrites behind the caller's back — a trailing dot or space (stripped, so `a.` is `a`),
// `:` after the drive (an alternate data stream), device names (CON, NUL, COM1…: they open the
// device in any directory), and the prefixes that bypass all of this (`\\?\`, `\\.\`). UNC paths
// (`\\server\share\…`) reach another machine, so they are refused unless allowed.
import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import { DRIVE } from './windows-absolute.js';

export { isAbsoluteWindowsPath } from './windows-absolute.js';

/** Windows' own limit with long paths enabled (characters). */
export const MAX_WINDOWS_PATH_CHARS = 32_767;

const RESERVED_NAMES = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
const FORBIDDEN_CHARS = /[<>:"|?*\x00-\x1f]/;

export interface WindowsPathOptions {
  /** Accept \\server\share\… paths (off by default). */
  allowUnc?: boolean;
}

function refuse(path: string, why: string): AgentOpError {
  return new AgentOpError(ErrorCode.PATH_NOT_ALLOWED, `path ${JSON.stringify(path)} ${why}`);
}

/** Throws PATH_NOT_ALLOWED naming the rule a path breaks; returns it unchanged when it passes. */
export function checkWindowsPath(path: string, options: WindowsPathOptions = {}): string {
  if (typeof path !== 'string' || path.length === 0) {
    throw new AgentOpError(ErrorCode.PATH_NOT_ALLOWED, 'path must be a non-empty string');
  }
  if (path.length > MAX_WINDOWS_PATH_CHARS) {
    throw refuse(path.slice(0, 64), `is longer than ${MAX_WINDOWS_PATH_CHARS} characters`);
  }
  if (path.includes('\0')) {
    throw refuse(path, 'must not contain NUL');
  }
  if (path.startsWith('\\\\?\\') || path.startsWith('\\\\.\\') || path.startsWith('\\??\\')) {
    throw refuse(path, 'uses a device or verbatim prefix (\\\\?\\, \\\\.\\), which is not allowed');
  }
  if (path.includes('/')) {
    throw refuse(path, 'must use \\ as the separator');
  }
  let segments: string[];
  if (path.startsWith('\\\\')) {
    if (!options.allowUnc) {
      throw refuse(path, 'is a UNC path (\\\\server\\share), which this agent does not allow');
    }
    segments = path.slice(2).split('\\');
    if (segments.length < 2 || !segments[0] || !segments[1]) {
      throw refuse(path, 'must name a server and a share (\\\\server\\share\\…)');
    }
  } else if (DRIVE.test(path)) {
    if (path.length === 3) {
      return path;
    }
    segments = path.slice(3).split('\\');
  } else if (/^[A-Za-z]:$/.test(path)) {
    throw refuse(path, 'must be absolute (a drive alone means its current directory; use C:\\)');
  } else {
    throw refuse(path, 'must be absolute (C:\\… )');
  }
  for (const segment of segments) {
    if (segment === '') {
      throw refuse(path, 'must be normalised (no empty segment or trailing \\)');
    }
    if (segment === '.' || segment === '..') {
      throw refuse(path, 'must be normalised (no "." or ".." segments)');
    }
    if (FORBIDDEN_CHARS.test(segment)) {
      throw refuse(
        path,
        'contains a character Windows does not allow in a name (<>:"|?* or a control character)',
      );
    }
    if (/[. ]$/.test(segment)) {
      throw refuse(path, 'has a name ending in a dot or space, which Windows strips');
    }
    if (RESERVED_NAMES.test(segment)) {
      throw refuse(
        path,
        `names the device ${segment.split('.')[0]!.toUpperCase()}, which is not a file`,
      );
    }
  }
  return path;
}

/** Case-insensitive, as NTFS names are by default: is `path` `root` or inside it? */
export function isInsideWindowsRoot(path: string, root: string): boolean {
  const p = path.toLowerCase();
  const r = root.toLowerCase();
  if (p === r) {
    return true;
  }
  return p.startsWith(r.endsWith('\\') ? r : `${r}\\`);
}
