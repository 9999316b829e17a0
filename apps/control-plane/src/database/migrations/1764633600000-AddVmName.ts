import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The name a VM's node reports beside its id (the libvirt domain name): VM ids are unique across
 * the cluster (a domain's UUID), names need not be, so the name is for people to read only.
 */
export class AddVmName1764633600000 implements MigrationInterface {
  name = 'AddVmName1764633600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN name text NOT NULL DEFAULT ''`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE vms DROP COLUMN name');
  }
}
