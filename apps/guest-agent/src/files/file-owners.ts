// Owner names of files where the OS does not answer them through stat's uid and gid (Windows:
// the owner is a SID in the file's security descriptor). Linux leaves this undefined and names
// uid and gid through UserResolver (file-type.ts OwnerNames).

/** A file's owner and group as names ('' when unknown). */
export interface FileOwner {
  owner: string;
  group: string;
}

export interface FileOwnerSource {
  /**
   * The owners of `paths`, in the same order; '' for a file whose owner could not be read. One
   * call for a whole listing page. Never throws: a lookup that fails leaves names empty (and
   * says why in the agent's log).
   */
  ownersOf(paths: readonly string[]): Promise<FileOwner[]>;
}
