// The fleet summary's top lists are chosen in SQL (TelemetryRepository.topLatest): only the
// candidates leave the database. This checks them against the lists computed the long way, in
// JavaScript over every VM's two newest points read one VM at a time, on a real PostgreSQL with
// many ties at the list boundaries (values equal once rounded to 0.01 as shown), VMs without a
// span in their newest point, VMs without memory figures, old points, gone VMs and projects.
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { FleetVmView } from '@lq/api';
import { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';
import { parseControlPlaneEnv } from '../../src/config/env.schema.js';
import { createDataSource } from '../../src/database/data-source.js';
import { TelemetryHistoryService } from '../../src/telemetry/telemetry-history.service.js';
import { Resolution } from '../../src/telemetry/telemetry-points.js';
import {
  TelemetryRepository,
  type PointRecord,
  type ProjectScope,
} from '../../src/telemetry/telemetry.repository.js';

const MIN = 60_000;
const VMS = 120;

/** A small deterministic generator: the same fleet on every run. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

describe('fleet summary top lists chosen in SQL', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: TelemetryRepository;
  let history: TelemetryHistoryService;
  const now = Math.floor(Date.now() / MIN) * MIN + 30_000;

  beforeAll(async () => {
    db = await createTestDatabase('lq_summary_order');
    ds = createDataSource(db.url);
    await ds.initialize();
    await ds.runMigrations({ transaction: 'each' });
    const config = parseControlPlaneEnv({ DATABASE_URL: db.url });
    repo = new TelemetryRepository(ds);
    history = new TelemetryHistoryService(config, repo);
    await ds.query(`INSERT INTO nodes (id, last_heartbeat_at) VALUES ('node-1', now())`);
    await ds.query(`INSERT INTO projects (id) VALUES ('p1'), ('p2') ON CONFLICT DO NOTHING`);
    const random = rng(42);
    const vms: unknown[][] = [];
    const points: unknown[][] = [];
    for (let i = 0; i < VMS; i += 1) {
      // Ids whose byte order differs from a locale's order ('vm-B' < 'vm-a' in "C").
      const id = `vm-${i % 3 === 0 ? 'B' : 'a'}${String(i).padStart(3, '0')}`;
      const gone = i % 17 === 0;
      vms.push([id, i % 2 === 0 ? 'p1' : 'p2', gone ? 'gone' : 'ready']);
      // Some VMs stopped reporting long ago: not in the summary.
      const newest = i % 13 === 0 ? now - 30 * MIN : now - (i % 3) * MIN;
      for (let k = 0; k < 3; k += 1) {
        const bucket = Math.floor(newest / MIN) * MIN - k * MIN;
        // Few distinct values, many equal once rounded, some differing only past 0.01.
        const cpu = Math.floor(random() * 5) * 10 + (random() < 0.3 ? 0.001 : 0);
        const memTotal = i % 11 === 0 ? 0 : 4000;
        const memUsed = Math.floor(random() * 4) * 1000 + (random() < 0.2 ? 0.3 : 0);
        const disk = [50, 75.5, 90.25, 33.333][Math.floor(random() * 4)]!;
        // The newest point of every fourth VM has one sample: no span, no rate.
        const span = k === 0 && i % 4 === 0 ? 0 : 50_000;
        const rate = Math.floor(random() * 3) * 100;
        points.push([
          id,
          new Date(bucket),
          cpu,
          memUsed,
          memTotal,
          disk,
          0,
          rate * (span / 1000),
          new Date(bucket + 5000),
          new Date(bucket + 5000 + span),
        ]);
      }
    }
    await ds.query(
      `INSERT INTO vms (id, node_id, name, agent_state, project_id)
       SELECT x->>0, 'node-1', 'name of ' || (x->>0), x->>2, x->>1
       FROM jsonb_array_elements($1::jsonb) x`,
      [JSON.stringify(vms)],
    );
    await ds.query(
      `INSERT INTO telemetry_points (vm_id, resolution, bucket, step_seconds, samples, cpu_sum,
         cpu_max, load1_sum, mem_used_sum, mem_total, disk_used, disk_total, disk_max_percent,
         rx_first, tx_first, rx_last, tx_last, first_at, last_at)
       SELECT x->>0, 1, (x->>1)::timestamptz, 60, 2, 2 * (x->>2)::float8, (x->>2)::float8, 0,
              2 * (x->>3)::float8, (x->>4)::bigint, 1, 2, (x->>5)::real,
              (x->>6)::bigint, 0, (x->>7)::bigint, 10, (x->>8)::timestamptz, (x->>9)::timestamptz
       FROM jsonb_array_elements($1::jsonb) x`,
      [JSON.stringify(points)],
    );
  }, 60_000);

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  /** The lists computed over every VM of the scope, one VM's points at a time. */
  async function reference(projects: ProjectScope, top: number) {
    const since = new Date(Math.floor(now / MIN) * MIN - 3 * MIN);
    const vms = await ds.query<
      Array<{ id: string; name: string; node_id: string; project_id: string }>
    >(
      `SELECT id, name, node_id, project_id FROM vms
       WHERE agent_state <> 'gone' AND ($1::text[] IS NULL OR project_id = ANY($1::text[]))`,
      [projects === 'all' ? null : projects],
    );
    const round = (n: number) => Math.round(n * 100) / 100;
    const views: FleetVmView[] = [];
    for (const vm of vms) {
      const pts: PointRecord[] = (
        await repo.series(vm.id, Resolution.FINE, since, new Date(now + MIN))
      ).reverse();
      if (pts.length === 0) {
        continue;
      }
      const p = pts[0]!;
      const withSpan = pts
        .slice(0, 2)
        .find((x) => typeof x.rx_rate === 'number' && typeof x.tx_rate === 'number');
      views.push({
        ...vm,
        at: new Date(p.t).toISOString(),
        cpu_percent: round(p.cpu),
        memory_percent: p.mem_total > 0 ? round((p.mem_used / p.mem_total) * 100) : null,
        memory_used_bytes: Math.round(p.mem_used),
        disk_max_percent: round(p.disk_max_percent),
        net_bytes_per_second: withSpan ? round(withSpan.rx_rate! + withSpan.tx_rate!) : null,
      });
    }
    const topBy = (value: (v: FleetVmView) => number | null) =>
      views
        .filter((v) => value(v) !== null)
        .sort((a, b) => value(b)! - value(a)! || (a.id < b.id ? -1 : 1))
        .slice(0, top);
    return {
      reporting: views.length,
      top: {
        cpu: topBy((v) => v.cpu_percent),
        memory: topBy((v) => v.memory_percent),
        disk: topBy((v) => v.disk_max_percent),
        network: topBy((v) => v.net_bytes_per_second),
      },
    };
  }

  it.each([
    ['all', 1],
    ['all', 7],
    ['all', 25],
    ['all', 100],
    [['p2'], 5],
    [['p1', 'p2'], 12],
    [['nowhere'], 3],
  ] as Array<[ProjectScope, number]>)(
    'should list what the long way lists, scope %j, top %i',
    async (projects, top) => {
      const expected = await reference(projects, top);
      const s = await history.summary(projects, { top }, now);
      expect({ reporting: s.reporting, top: s.top }).toEqual(expected);
      if (projects === 'all') {
        // The fleet has what the lists are meant to be about: ties and VMs left out.
        expect(expected.reporting).toBeGreaterThan(50);
        expect(expected.reporting).toBeLessThan(VMS);
      }
    },
  );
});
