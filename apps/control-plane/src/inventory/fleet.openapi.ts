import type { SchemaObject } from '@nestjs/swagger';

// The OpenAPI shapes of the dashboard's answers (@lq/api's TelemetrySeriesView and
// FleetSummaryView; those types are what the code checks).

const num = { type: 'number' } as const;
const nullableNum = { type: 'number', nullable: true } as const;
const str = { type: 'string' } as const;
const time = { type: 'string', format: 'date-time' } as const;

const POINT: SchemaObject = {
  type: 'object',
  properties: {
    t: time,
    samples: { type: 'integer' },
    cpu_percent: num,
    cpu_max_percent: num,
    load1: num,
    memory_used_bytes: num,
    memory_total_bytes: num,
    memory_percent: nullableNum,
    disk_used_bytes: num,
    disk_total_bytes: num,
    disk_max_percent: num,
    net_rx_bytes_per_second: nullableNum,
    net_tx_bytes_per_second: nullableNum,
  },
};

export const TELEMETRY_SERIES_SCHEMA: SchemaObject = {
  type: 'object',
  properties: {
    vm_id: str,
    from: time,
    to: time,
    resolution: { type: 'string', enum: ['fine', 'coarse'] },
    step_seconds: { type: 'integer' },
    points: { type: 'array', items: POINT },
  },
};

const FLEET_VM: SchemaObject = {
  type: 'object',
  properties: {
    id: str,
    name: str,
    node_id: str,
    project_id: str,
    at: time,
    cpu_percent: num,
    memory_percent: nullableNum,
    memory_used_bytes: num,
    disk_max_percent: num,
    net_bytes_per_second: nullableNum,
  },
};

const COUNTS: SchemaObject = {
  type: 'array',
  items: { type: 'object', properties: { key: str, count: { type: 'integer' } } },
};

export const FLEET_SUMMARY_SCHEMA: SchemaObject = {
  type: 'object',
  properties: {
    generated_at: time,
    vms: { type: 'integer' },
    reporting: { type: 'integer' },
    by_agent_state: COUNTS,
    by_agent_version: COUNTS,
    top: {
      type: 'object',
      properties: {
        cpu: { type: 'array', items: FLEET_VM },
        memory: { type: 'array', items: FLEET_VM },
        disk: { type: 'array', items: FLEET_VM },
        network: { type: 'array', items: FLEET_VM },
      },
    },
    disk_threshold_percent: num,
    full_disk_vms: { type: 'integer' },
    full_disks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          vm_id: str,
          vm_name: str,
          node_id: str,
          project_id: str,
          mount_point: str,
          used_bytes: num,
          total_bytes: num,
          used_percent: num,
        },
      },
    },
  },
};
