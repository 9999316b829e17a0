// What machines fetch: agent downloads (/downloads/agent, public), the keys guest requests are
// signed with (/api/signing-keys, public), and a release file's upload receipt.

/** GET /downloads/agent */
export interface AgentDownloadsView {
  /** The newest release, null when none is published. */
  latest: string | null;
  /** Newest first. */
  versions: string[];
}

/** GET /downloads/agent/:version */
export interface AgentDownloadView {
  version: string;
  commit: string;
  files: Array<{ name: string; sha256: string }>;
  /** Short names (linux-amd64, deb, …) → the file they stand for. */
  aliases: Record<string, string>;
}

/** PUT /api/agent/releases/:version/files/:name */
export interface ReleaseFileReceivedView {
  name: string;
  size: number;
  sha256: string;
}

/** One key of GET /api/signing-keys. */
export interface SigningKeyView {
  key_id: string;
  /** Raw Ed25519 public key, base64. */
  public_key: string;
  algorithm: 'Ed25519';
}

/** GET /api/signing-keys */
export interface SigningKeysView {
  keys: SigningKeyView[];
}
