// One network stack as the agent drives it (PROTOCOL.md §11): what it reads for network.get,
// the files it owns and renders for network.configure, and the commands that apply them.
// Rendering and parsing are pure; the applier does the I/O.
import type { NetIface } from '@lq/proto';

export type BackendKind = 'netplan' | 'networkmanager' | 'networkd' | 'ifupdown';

/** Files by path: their contents, or null for absent (render: remove). */
export type FileSet = ReadonlyMap<string, string | null>;

export interface NetworkBackendDriver {
  readonly kind: BackendKind;
  /** The stack's configuration files this backend reads (its own and the guest's). */
  configFiles(): Promise<string[]>;
  /** The interfaces those files configure (loopback left out). */
  parse(files: FileSet): NetIface[];
  /** The files the agent writes for these interfaces. */
  ownedPaths(names: readonly string[]): string[];
  /**
   * New contents of ownedPaths(desired) (null: remove) from their current contents. Other
   * interfaces' configuration in a shared file is kept.
   */
  render(desired: readonly NetIface[], current: FileSet): Map<string, string | null>;
  /** Commands run before the files change (ifdown on the old file); their failures are logged. */
  down(names: readonly string[], current: FileSet): string[][];
  /** Commands that apply the files now in place; a failure fails the apply. */
  up(names: readonly string[], applied: FileSet): string[][];
}

export const HEADER =
  'Written by the LimiQuantix guest agent (network.configure); changes here are replaced on the next one.';
