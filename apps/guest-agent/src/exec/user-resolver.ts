import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ErrorCode } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** A resolved user: from the passwd file, from NSS, or a bare numeric uid without an entry. */
export interface UserEntry extends PasswdEntry {
  source: 'files' | 'nss' | 'uid';
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The credentials and login facts a command runs with. */
export interface ResolvedUser {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary gids, the user's primary group first. */
  groups: number[];
  home: string;
  shell: string;
}

export interface ResolveOptions {
  /** Skip the supplementary group lookup (a spawn for NSS-only users) when it is not needed. */
  supplementaryGroups?: boolean;
}

interface PasswdDb {
  byName: Map<string, PasswdEntry>;
  byUid: Map<number, PasswdEntry>;
}

interface GroupDb {
  byName: Map<string, GroupEntry>;
  byGid: Map<number, GroupEntry>;
  /** User name → gids of the groups listing it as a member. */
  memberOf: Map<string, number[]>;
}

// uid_t/gid_t are 32-bit and (uid_t)-1 means "unchanged" to setresuid, so it names nobody.
const MAX_ID = 0xffff_fffe;
const NUMERIC = /^\d+$/;
// Whatever can appear in passwd/group as a name; rejecting a leading '-' keeps getent's options out.
const VALID_NAME = /^[^-:\s\0][^:\0\n\r]{0,255}$/;
const LOOKUP_TIMEOUT_MS = 10_000;
// A numeric uid without a passwd entry (sudo -u '#1234') gets the overflow group, not the
// agent's own (root) group.
const UNKNOWN_USER_GID = 65534;

function parseId(text: string | undefined): number | null {
  if (text === undefined || !NUMERIC.test(text)) {
    return null;
  }
  const id = Number(text);
  return id <= MAX_ID ? id : null;
}

function isSkippable(line: string): boolean {
  // '+'/'-' lines are NIS compat markers, not users.
  return line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-');
}

/** Parses passwd(5) text; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (isSkippable(line)) {
      continue;
    }
    const [name, , uidText, gidText, , home, shell] = line.split(':');
    const uid = parseId(uidText);
    const gid = parseId(gidText);
    if (!name || uid === null || gid === null) {
      continue;
    }
    entries.push({ name, uid, gid, home: home || '/', shell: shell?.trim() || '/bin/sh' });
  }
  return entries;
}

/** Parses group(5) text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (isSkippable(line)) {
      continue;
    }
    const [name, , gidText, memberText] = line.split(':');
    const gid = parseId(gidText);
    if (!name || gid === null) {
      continue;
    }
    const members = (memberText ?? '')
      .trim()
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    entries.push({ name, gid, members });
  }
  return entries;
}

function passwdDb(text: string): PasswdDb {
  const db: PasswdDb = { byName: new Map(), byUid: new Map() };
  // First entry wins, as with getpwnam/getpwuid.
  for (const e of parsePasswd(text)) {
    if (!db.byName.has(e.name)) {
      db.byName.set(e.name, e);
    }
    if (!db.byUid.has(e.uid)) {
      db.byUid.set(e.uid, e);
    }
  }
  return db;
}

function groupDb(text: string): GroupDb {
  const db: GroupDb = { byName: new Map(), byGid: new Map(), memberOf: new Map() };
  for (const e of parseGroup(text)) {
    if (!db.byName.has(e.name)) {
      db.byName.set(e.name, e);
    }
    if (!db.byGid.has(e.gid)) {
      db.byGid.set(e.gid, e);
    }
    for (const m of e.members) {
      const gids = db.memberOf.get(m);
      if (gids === undefined) {
        db.memberOf.set(m, [e.gid]);
      } else if (!gids.includes(e.gid)) {
        gids.push(e.gid);
      }
    }
  }
  return db;
}

interface CachedFile<T> {
  key: string;
  value: Promise<T>;
}

interface CommandResult {
  code: number;
  stdout: string;
}

/**
 * Resolves run-as users and groups. The passwd and group files are parsed directly (no spawn per
 * execution) and re-read when they change; names they do not know go to getent, so NSS users
 * (LDAP, sssd) work too.
 */
export class UserResolver {
  private passwdCache: CachedFile<PasswdDb> | null = null;
  private groupCache: CachedFile<GroupDb> | null = null;

  constructor(private readonly config: AgentConfig) {}

  /**
   * `user` is a name or numeric uid; `group` (name or numeric gid) defaults to the user's primary
   * group. Throws USER_NOT_FOUND / GROUP_NOT_FOUND.
   */
  async resolve(user: string, group = '', options: ResolveOptions = {}): Promise<ResolvedUser> {
    const entry = await this.lookupUser(user);
    const gid = group === '' ? entry.gid : (await this.lookupGroup(group)).gid;
    const groups =
      options.supplementaryGroups === false ? [entry.gid] : await this.supplementaryGroups(entry);
    return { name: entry.name, uid: entry.uid, gid, groups, home: entry.home, shell: entry.shell };
  }

  /** A numeric uid without an entry is allowed (home "/"), as with sudo -u '#1234'. */
  async lookupUser(spec: string): Promise<UserEntry> {
    const uid = parseId(spec);
    if (uid === null && !VALID_NAME.test(spec)) {
      throw userNotFound(spec);
    }
    const db = await this.passwd();
    const local = uid === null ? db.byName.get(spec) : db.byUid.get(uid);
    if (local) {
      return { ...local, source: 'files' };
    }
    const viaNss = await this.getentEntry('passwd', spec);
    const nss = viaNss === null ? undefined : parsePasswd(viaNss)[0];
    if (nss) {
      return { ...nss, source: 'nss' };
    }
    if (uid !== null) {
      const shell = this.config.exec.shell;
      return { name: spec, uid, gid: UNKNOWN_USER_GID, home: '/', shell, source: 'uid' };
    }
    throw userNotFound(spec);
  }

  /** A numeric gid without an entry is allowed, as with sudo -g '#1234'. */
  async lookupGroup(spec: string): Promise<GroupEntry> {
    const gid = parseId(spec);
    if (gid === null && !VALID_NAME.test(spec)) {
      throw groupNotFound(spec);
    }
    const db = await this.group();
    const local = gid === null ? db.byName.get(spec) : db.byGid.get(gid);
    if (local) {
      return local;
    }
    const viaNss = await this.getentEntry('group', spec);
    const nss = viaNss === null ? undefined : parseGroup(viaNss)[0];
    if (nss) {
      return nss;
    }
    if (gid !== null) {
      return { name: spec, gid, members: [] };
    }
    throw groupNotFound(spec);
  }

  /** The user's primary gid followed by the groups that list it as a member. */
  async supplementaryGroups(user: UserEntry): Promise<number[]> {
    const groups = [user.gid];
    const add = (gid: number): void => {
      if (!groups.includes(gid)) {
        groups.push(gid);
      }
    };
    if (user.source === 'nss') {
      for (const gid of await this.nssGroups(user.name)) {
        add(gid);
      }
      return groups;
    }
    if (user.source === 'uid') {
      return groups;
    }
    const db = await this.group();
    for (const gid of db.memberOf.get(user.name) ?? []) {
      add(gid);
    }
    return groups;
  }

  private passwd(): Promise<PasswdDb> {
    return this.cached(this.config.system.passwd_file, this.passwdCache, passwdDb, (c) => {
      this.passwdCache = c;
    });
  }

  private group(): Promise<GroupDb> {
    return this.cached(this.config.system.group_file, this.groupCache, groupDb, (c) => {
      this.groupCache = c;
    });
  }

  // One stat per lookup; the parse is shared by concurrent callers and redone when the file's
  // inode, size or mtime changes (useradd replaces the file by rename). The stat is made
  // synchronously: one file in /etc takes a few microseconds, a trip through the thread pool
  // about 25 us of Bun's time, on every execution (as os-release in system-info.ts).
  private async cached<T>(
    path: string,
    current: CachedFile<T> | null,
    build: (text: string) => T,
    store: (c: CachedFile<T>) => void,
  ): Promise<T> {
    const st = statSync(path, { throwIfNoEntry: false });
    const key = st === undefined ? 'missing' : `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (current?.key === key) {
      return current.value;
    }
    const value =
      key === 'missing' ? Promise.resolve(build('')) : readFile(path, 'utf8').then(build);
    store({ key, value });
    value.catch(() => store({ key: 'failed', value }));
    return value;
  }

  /** One passwd/group line from NSS, or null when NSS does not know the key either. */
  private async getentEntry(db: 'passwd' | 'group', key: string): Promise<string | null> {
    const result = await this.runLookup(this.config.commands.getent, [db, key]);
    // 2: key not found; anything else failing (no getent, no NSS) also means "unknown here".
    return result?.code === 0 && result.stdout.trim() !== '' ? result.stdout : null;
  }

  private async nssGroups(name: string): Promise<number[]> {
    const init = await this.runLookup(this.config.commands.getent, ['initgroups', name]);
    const [who, ...gids] = init?.code === 0 ? init.stdout.trim().split(/\s+/) : [];
    if (who === name && gids.every((g) => parseId(g) !== null)) {
      return gids.map(Number);
    }
    // Not every getent has initgroups (musl, busybox).
    const id = await this.runLookup('id', ['-G', name]);
    const list = id?.code === 0 ? id.stdout.trim().split(/\s+/) : [];
    return list.map(parseId).filter((g): g is number => g !== null);
  }

  /** Runs a lookup command; null when it cannot be started. */
  private runLookup(file: string, args: string[]): Promise<CommandResult | null> {
    return new Promise((resolve, reject) => {
      execFile(
        file,
        args,
        {
          env: { PATH: this.config.exec.path, LANG: 'C' },
          timeout: LOOKUP_TIMEOUT_MS,
          maxBuffer: 1024 * 1024,
        },
        (err, stdout) => {
          if (err === null) {
            resolve({ code: 0, stdout });
            return;
          }
          const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
          if (e.killed) {
            reject(
              new AgentOpError(
                ErrorCode.IO_ERROR,
                `${file} ${args.join(' ')} did not answer within ${LOOKUP_TIMEOUT_MS} ms`,
              ),
            );
          } else if (typeof e.code === 'number') {
            resolve({ code: e.code, stdout });
          } else {
            resolve(null);
          }
        },
      );
    });
  }
}

function userNotFound(spec: string): AgentOpError {
  return new AgentOpError(
    ErrorCode.USER_NOT_FOUND,
    `user ${JSON.stringify(spec)} does not exist in the guest`,
  );
}

function groupNotFound(spec: string): AgentOpError {
  return new AgentOpError(
    ErrorCode.GROUP_NOT_FOUND,
    `group ${JSON.stringify(spec)} does not exist in the guest`,
  );
}
