import { Inject, Injectable } from '@nestjs/common';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { compareVersions, releaseStatement, verifiedBy } from '@lq/proto';
import type { AgentReleaseListView, AgentReleaseView } from '@lq/api';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { AgentReleases, type AgentRelease, type SignedArtifact } from './agent-releases.js';

/** How long the catalog reuses what it read (an import refreshes it at once). */
const CACHE_MS = 5000;

/** A release artifact an update can send: its file on disk and what it is signed as. */
export interface UpdatableArtifact extends SignedArtifact {
  version: string;
  path: string;
}

/**
 * The agent releases the control plane offers for self-updates: the release folders of the
 * downloads directory (found at start and on every refresh) whose signed manifest agrees with
 * their SHA256SUMS and files, and — when LQ_AGENT_RELEASE_KEYS is set — whose signatures verify
 * with one of those keys. The agents verify the signature themselves in any case.
 */
@Injectable()
export class AgentReleaseCatalog {
  private cached: { at: number; releases: AgentReleaseView[]; raw: AgentRelease[] } | undefined;

  constructor(
    @Inject(AgentReleases) private readonly store: AgentReleases,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  /** Every release, newest first, and the newest updatable one. */
  list(): AgentReleaseListView {
    const { releases } = this.read();
    return { latest: releases.find((r) => r.updatable)?.version ?? null, releases };
  }

  /** The newest updatable release's version (what "outdated" is measured against). */
  latest(): string | null {
    return this.list().latest;
  }

  /** The artifact of `version` for a target, if the release is updatable and has one. */
  artifact(version: string, target: string): UpdatableArtifact | undefined {
    const { releases, raw } = this.read();
    const view = releases.find((r) => r.version === version);
    const release = raw.find((r) => r.version === version);
    const a = view?.updatable ? release?.artifacts.find((x) => x.target === target) : undefined;
    return a && release ? { ...a, version, path: join(release.dir, a.file) } : undefined;
  }

  /** Whether a version is on offer at all (for error messages). */
  has(version: string): boolean {
    return this.read().raw.some((r) => r.version === version);
  }

  /** Forgets what was read: the next question reads the folder again. */
  refresh(): void {
    this.cached = undefined;
  }

  /** The downloads directory releases live in. */
  root(): string | undefined {
    return this.store.root();
  }

  private read(): { releases: AgentReleaseView[]; raw: AgentRelease[] } {
    const now = Date.now();
    if (this.cached && now - this.cached.at < CACHE_MS) {
      return this.cached;
    }
    const raw = this.store.list();
    const releases = raw.map((r) => this.view(r));
    releases.sort((a, b) => compareVersions(b.version, a.version));
    this.cached = { at: now, releases, raw };
    return this.cached;
  }

  private view(r: AgentRelease): AgentReleaseView {
    const artifacts = r.artifacts.map((a) => ({
      target: a.target,
      file: a.file,
      sha256: a.sha256,
      size: a.size,
      verified: this.verify(r, a),
    }));
    return {
      version: r.version,
      commit: r.commit,
      artifacts,
      updatable: artifacts.length > 0 && artifacts.every((a) => a.verified),
    };
  }

  /** The manifest agrees with SHA256SUMS and the file, and its signature verifies. */
  private verify(r: AgentRelease, a: SignedArtifact): boolean {
    if (r.files.get(a.file) !== a.sha256) {
      return false;
    }
    const st = statSync(join(r.dir, a.file), { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== a.size) {
      return false;
    }
    const keys = this.config.agentUpdates.releaseKeys;
    return (
      keys.length === 0 ||
      verifiedBy(
        keys,
        releaseStatement({ version: r.version, target: a.target, sha256: a.sha256, size: a.size }),
        Buffer.from(a.signature, 'base64'),
      ) !== undefined
    );
  }
}
