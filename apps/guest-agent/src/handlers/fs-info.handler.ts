import { readFile } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { FsInfoSchema, GetFsInfoResponseSchema, type AgentPayload } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { freezableMounts, isPseudo, parseMounts, usage, type Mount } from '../quiesce/mounts.js';
import type { OperationHandler } from './handler.js';

interface MountTable {
  text: string;
  mounts: Mount[];
  freezable: Set<string>;
}

/**
 * fs.info: the mounted filesystems (pseudo ones left out), their type, size and use. The mount
 * table is read on every call (mounts come and go), but parsed again only when its text changed;
 * sizes are asked each time (quiesce/mounts.ts usage: local filesystems without a thread-pool
 * trip).
 */
export class GetFsInfoHandler implements OperationHandler<'getFsInfo'> {
  readonly requestCase = 'getFsInfo' as const;
  private table: MountTable | undefined;

  constructor(private readonly config: AgentConfig) {}

  async handle(): Promise<AgentPayload> {
    const { mounts, freezable } = this.tableOf(
      await readFile(this.config.quiesce.mounts_file, 'utf8'),
    );
    const filesystems = await Promise.all(
      mounts.map(async (m) => {
        const u = await usage(m.mountPoint, m.fsType);
        return create(FsInfoSchema, {
          mountPoint: m.mountPoint,
          device: m.device,
          fsType: m.fsType,
          totalBytes: BigInt(u.total),
          usedBytes: BigInt(u.used),
          readOnly: m.readOnly,
          freezable: freezable.has(m.mountPoint),
        });
      }),
    );
    return { case: 'getFsInfoResponse', value: create(GetFsInfoResponseSchema, { filesystems }) };
  }

  private tableOf(text: string): MountTable {
    if (this.table?.text !== text) {
      const mounts = parseMounts(text).filter((m) => !isPseudo(m));
      const freezable = new Set(
        freezableMounts(mounts, this.config.quiesce.freezable_types).map((m) => m.mountPoint),
      );
      this.table = { text, mounts, freezable };
    }
    return this.table;
  }
}
