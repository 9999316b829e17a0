import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The telemetry history behind the fleet dashboard: one row per VM, resolution and step
 * (telemetry/telemetry-points.ts says what the columns aggregate). The primary key serves the
 * dashboard's read (one VM, one resolution, a time range) from the index alone; the second
 * index serves the pruner's bounded deletes of expired points. A point is updated by each flush
 * while its step lasts: the free space (fillfactor) lets those be HOT updates.
 */
export class CreateTelemetryHistory1764979200120 implements MigrationInterface {
  name = 'CreateTelemetryHistory1764979200120';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE telemetry_points (
        vm_id text NOT NULL,
        resolution smallint NOT NULL,
        bucket timestamptz NOT NULL,
        step_seconds integer NOT NULL,
        samples integer NOT NULL,
        cpu_sum double precision NOT NULL,
        cpu_max real NOT NULL,
        load1_sum double precision NOT NULL,
        mem_used_sum double precision NOT NULL,
        mem_total bigint NOT NULL,
        disk_used bigint NOT NULL,
        disk_total bigint NOT NULL,
        disk_max_percent real NOT NULL,
        rx_first bigint NOT NULL,
        tx_first bigint NOT NULL,
        rx_last bigint NOT NULL,
        tx_last bigint NOT NULL,
        first_at timestamptz NOT NULL,
        last_at timestamptz NOT NULL,
        CONSTRAINT telemetry_points_pkey PRIMARY KEY (vm_id, resolution, bucket)
      ) WITH (fillfactor = 80)`);
    await q.query(
      'CREATE INDEX telemetry_points_expiry_idx ON telemetry_points (resolution, bucket)',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE telemetry_points');
  }
}
