import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A hypervisor host, as its node daemon's heartbeats describe it. */
@Entity({ name: 'nodes' })
export class NodeEntity {
  @PrimaryColumn({ type: 'text' })
  id!: string;

  @Column({ type: 'text', default: '' })
  hostname!: string;

  @Column({ name: 'daemon_version', type: 'text', default: '' })
  daemonVersion!: string;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt!: Date | null;

  @Column({ name: 'last_heartbeat_at', type: 'timestamptz' })
  lastHeartbeatAt!: Date;

  @Column({ name: 'file_chunk_max_bytes', type: 'integer', default: 0 })
  fileChunkMaxBytes!: number;

  @Column({ name: 'vm_count', type: 'integer', default: 0 })
  vmCount!: number;
}
