import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * A VM and its agent as the node daemons report them. Agent facts (OS, interfaces) and the
 * latest telemetry are stored as the proto3 JSON of their messages, so the API serves them in
 * the same shape as everything else.
 */
@Entity({ name: 'vms' })
@Index('vms_node_id_idx', ['nodeId'])
export class VmEntity {
  @PrimaryColumn({ type: 'text' })
  id!: string;

  @Column({ name: 'node_id', type: 'text' })
  nodeId!: string;

  /** What its node calls it (the libvirt domain name), for display; not unique. */
  @Column({ type: 'text', default: '' })
  name!: string;

  /** ready, connecting, disconnected, or gone (no longer in its node's heartbeat). */
  @Column({ name: 'agent_state', type: 'text' })
  agentState!: string;

  @Column({ name: 'agent_version', type: 'text', default: '' })
  agentVersion!: string;

  @Column({ type: 'jsonb', default: () => "'[]'::jsonb" })
  capabilities!: string[];

  @Column({ type: 'text', default: '' })
  hostname!: string;

  @Column({ type: 'jsonb', nullable: true })
  os!: unknown;

  @Column({ type: 'jsonb', default: () => "'[]'::jsonb" })
  interfaces!: unknown[];

  @Column({ name: 'connected_since', type: 'timestamptz', nullable: true })
  connectedSince!: Date | null;

  @Column({ name: 'last_seen_at', type: 'timestamptz', nullable: true })
  lastSeenAt!: Date | null;

  @Column({ type: 'jsonb', nullable: true })
  telemetry!: unknown;

  @Column({ name: 'telemetry_at', type: 'timestamptz', nullable: true })
  telemetryAt!: Date | null;

  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}
