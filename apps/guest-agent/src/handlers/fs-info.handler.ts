import { create } from '@bufbuild/protobuf';
import { FsInfoSchema, GetFsInfoResponseSchema, type AgentPayload } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { freezableMounts, isPseudo, readMounts, usage } from '../quiesce/mounts.js';
import type { OperationHandler } from './handler.js';

/** fs.info: the mounted filesystems (pseudo ones left out), their type, size and use. */
export class GetFsInfoHandler implements OperationHandler<'getFsInfo'> {
  readonly requestCase = 'getFsInfo' as const;

  constructor(private readonly config: AgentConfig) {}

  async handle(): Promise<AgentPayload> {
    const mounts = (await readMounts(this.config.quiesce.mounts_file)).filter((m) => !isPseudo(m));
    const freezable = new Set(
      freezableMounts(mounts, this.config.quiesce.freezable_types).map((m) => m.mountPoint),
    );
    const filesystems = await Promise.all(
      mounts.map(async (m) => {
        const u = await usage(m.mountPoint);
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
}
