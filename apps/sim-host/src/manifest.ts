// The sim host's manifest: which agents one process runs (see main.ts).

/** Agents one host process may run. */
export const MAX_AGENTS = 2000;

export interface ManifestEntry {
  id: string;
  listen: string;
  config: string;
}

/** Reads and checks the manifest; throws naming the first bad entry. */
export function parseManifest(text: string): ManifestEntry[] {
  const doc = JSON.parse(text) as unknown;
  const agents = (doc as { agents?: unknown } | null)?.agents;
  if (!Array.isArray(agents) || agents.length === 0) {
    throw new Error('manifest must be an object with a non-empty "agents" array');
  }
  if (agents.length > MAX_AGENTS) {
    throw new Error(`manifest lists ${agents.length} agents; at most ${MAX_AGENTS}`);
  }
  const ids = new Set<string>();
  return agents.map((entry: unknown, i) => {
    const e = entry as Partial<ManifestEntry> | null;
    for (const key of ['id', 'listen', 'config'] as const) {
      if (typeof e?.[key] !== 'string' || e[key] === '') {
        throw new Error(`agents[${i}].${key} must be a non-empty string`);
      }
    }
    if (ids.has(e!.id!)) {
      throw new Error(`agents[${i}].id ${JSON.stringify(e!.id)} appears twice`);
    }
    ids.add(e!.id!);
    return { id: e!.id!, listen: e!.listen!, config: e!.config! };
  });
}
