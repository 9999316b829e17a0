import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The node daemon's order of the VM state stored (`state_seq` of the heartbeat or event that
 * set it, PROTOCOL.md §9): replicas apply heartbeats and events concurrently, and one built
 * earlier must not undo a later one. 0: no order (a daemon before 0.7.0, or reset).
 */
export class AddVmStateSeq1765000021000 implements MigrationInterface {
  name = 'AddVmStateSeq1765000021000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN state_seq bigint NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms DROP COLUMN state_seq`);
  }
}
