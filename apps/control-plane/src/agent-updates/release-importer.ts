import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { releaseStatement, verifiedBy } from '@lq/proto';
import type { AgentReleaseView } from '@lq/api';
import { actorOf } from '../audit/audit-actor.js';
import type { Caller } from '../common/caller.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { AgentReleaseCatalog } from '../downloads/agent-release-catalog.js';
import { MANIFEST, parseManifest } from '../downloads/agent-releases.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';

const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/;
const FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

function invalid(message: string): VmGuestException {
  return new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, message);
}

/**
 * `lqctl agent release import DIR`: the files of a release folder arrive one by one (streamed,
 * bounded by LQ_AGENT_RELEASE_MAX_BYTES) into `<downloads>/.incoming-<version>/`; publishing
 * checks that its release.json names the version, that every artifact of its signed manifest is
 * listed in SHA256SUMS with the sha256 and size of the file received, and — with
 * LQ_AGENT_RELEASE_KEYS — that each signature verifies, then renames the folder to
 * `<downloads>/<version>/`, where the downloads and the catalog find it. Audited as an admin step.
 */
@Injectable()
export class ReleaseImporter {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(AgentReleaseCatalog) private readonly catalog: AgentReleaseCatalog,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  async receive(
    version: string,
    name: string,
    body: AsyncIterable<Buffer>,
  ): Promise<{ name: string; size: number; sha256: string }> {
    const dir = await this.incoming(version);
    if (!FILE.test(name)) {
      throw invalid(`file name ${JSON.stringify(name)} must be 1-200 of A-Z a-z 0-9 . _ -`);
    }
    const max = this.config.agentUpdates.releaseMaxBytes;
    const hash = createHash('sha256');
    let size = 0;
    async function* bounded(): AsyncIterable<Buffer> {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > max) {
          throw invalid(`${name} exceeds LQ_AGENT_RELEASE_MAX_BYTES ${max}`);
        }
        hash.update(chunk);
        yield chunk;
      }
    }
    const path = join(dir, name);
    try {
      await pipeline(bounded(), createWriteStream(path, { mode: 0o644 }));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    return { name, size, sha256: hash.digest('hex') };
  }

  async publish(version: string, caller: Caller): Promise<AgentReleaseView> {
    const dir = await this.incoming(version);
    const root = this.root();
    const final = join(root, version);
    if (existsSync(final)) {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        `release ${version} is already published (${final}); a release never changes`,
      );
    }
    const read = (f: string) => {
      const p = join(dir, f);
      if (!existsSync(p)) {
        throw invalid(`release ${version} has no ${f} yet: upload it first`);
      }
      return readFileSync(p, 'utf8');
    };
    const meta = JSON.parse(read('release.json')) as { version?: unknown };
    if (meta.version !== version) {
      throw invalid(`release.json names version ${String(meta.version)}, not ${version}`);
    }
    const sums = new Map<string, string>();
    for (const line of read('SHA256SUMS').split('\n')) {
      const m = /^([0-9a-f]{64}) [ *]([^/\\]+)$/.exec(line);
      if (m) {
        sums.set(m[2]!, m[1]!);
      }
    }
    let artifacts;
    try {
      artifacts = parseManifest(read(MANIFEST), version);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    if (artifacts.length === 0) {
      throw invalid(`${MANIFEST} lists no executable`);
    }
    const keys = this.config.agentUpdates.releaseKeys;
    for (const a of artifacts) {
      const path = join(dir, a.file);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) {
        throw invalid(`${a.file} (${a.target}) was not uploaded`);
      }
      const sha256 = await sha256Of(path);
      if (sha256 !== a.sha256 || sums.get(a.file) !== a.sha256 || st.size !== a.size) {
        throw invalid(
          `${a.file}: sha256 ${sha256} and size ${st.size} received; the manifest says ${a.sha256} and ${a.size}, SHA256SUMS ${sums.get(a.file) ?? 'nothing'}`,
        );
      }
      if (
        keys.length > 0 &&
        !verifiedBy(
          keys,
          releaseStatement({ version, target: a.target, sha256, size: a.size }),
          Buffer.from(a.signature, 'base64'),
        )
      ) {
        throw invalid(
          `${a.file} (${a.target}): signature does not verify with LQ_AGENT_RELEASE_KEYS`,
        );
      }
    }
    await rename(dir, final);
    this.catalog.refresh();
    await this.audit.record({
      kind: 'admin',
      ...actorOf(caller.principal, caller),
      operation: 'agent.release.import',
      params: {
        version,
        artifacts: artifacts.map((a) => ({ target: a.target, file: a.file, sha256: a.sha256 })),
        files: (await readdir(final)).length,
      },
      status: 'ok',
    });
    return this.catalog.list().releases.find((r) => r.version === version)!;
  }

  private root(): string {
    const root = this.catalog.root();
    if (!root) {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        'no downloads directory to import into: set LQ_AGENT_DOWNLOADS_DIR',
      );
    }
    return root;
  }

  private async incoming(version: string): Promise<string> {
    if (!VERSION.test(version)) {
      throw invalid('version must be a release version like 0.2.0');
    }
    const dir = join(this.root(), `.incoming-${version}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }
}

function sha256Of(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => hash.update(d))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
