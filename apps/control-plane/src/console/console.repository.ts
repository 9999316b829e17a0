import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/**
 * What the console shows that the VM message does not carry: since when each agent has been
 * connected (vms.connected_since, kept by the inventory from the node daemons' heartbeats).
 */
@Injectable()
export class ConsoleRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  async connectedSince(ids: string[]): Promise<Map<string, string | null>> {
    if (ids.length === 0) {
      return new Map();
    }
    const rows = await this.ds.query<Array<{ id: string; connected_since: Date | null }>>(
      'SELECT id, connected_since FROM vms WHERE id = ANY($1::text[])',
      [ids],
    );
    return new Map(rows.map((r) => [r.id, r.connected_since?.toISOString() ?? null]));
  }
}
