// A cluster of nats-servers on loopback for tests and npm run faults: full mesh of routes, each
// with its monitoring port, no authorization (test/deploy/nats-cluster.spec.ts runs the deploy/
// configuration with TLS and users; this is the plain shape, for faults injected under load).
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startNatsServer, type RunningNats } from './nats-server.js';

export interface ClusterMember {
  name: string;
  nats: RunningNats;
  monitorPort: number;
  clusterPort: number;
}

export interface RunningNatsCluster {
  members: ClusterMember[];
  /** Every member's client URL, comma-separated (NATS_URL). */
  url: string;
  /** Whether every member has a route to every other. */
  meshFormed(): Promise<boolean>;
  /** Names of the client connections a member holds (connz). */
  clientsOf(member: ClusterMember): Promise<string[]>;
  stop(): Promise<void>;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as T;
}

/** Starts `size` clustered servers and resolves once their routes form a full mesh. */
export async function startNatsCluster(size = 3, timeoutMs = 15_000): Promise<RunningNatsCluster> {
  const ports = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({
      name: `nats-${i + 1}`,
      port: await freePort(),
      monitorPort: await freePort(),
      clusterPort: await freePort(),
    })),
  );
  const routes = ports.map((p) => `nats://127.0.0.1:${p.clusterPort}`).join(', ');
  const members: ClusterMember[] = [];
  const stop = async () => {
    await Promise.all(members.map((m) => m.nats.stop()));
  };
  try {
    for (const p of ports) {
      const nats = await startNatsServer({
        port: p.port,
        config: `server_name: ${p.name}
http: "127.0.0.1:${p.monitorPort}"
cluster {
  name: "lq-test"
  listen: "127.0.0.1:${p.clusterPort}"
  routes: [ ${routes} ]
}
`,
      });
      members.push({ name: p.name, nats, monitorPort: p.monitorPort, clusterPort: p.clusterPort });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const cluster: RunningNatsCluster = {
    members,
    url: members.map((m) => m.nats.url).join(','),
    async meshFormed() {
      const counts = await Promise.all(
        members.map((m) =>
          getJson<{ num_routes: number }>(`http://127.0.0.1:${m.monitorPort}/routez`)
            .then((r) => r.num_routes)
            .catch(() => -1),
        ),
      );
      return counts.every((n) => n >= size - 1);
    },
    async clientsOf(member) {
      const c = await getJson<{ connections?: Array<{ name?: string }> }>(
        `http://127.0.0.1:${member.monitorPort}/connz`,
      );
      return (c.connections ?? []).map((x) => x.name ?? '');
    },
    stop,
  };
  for (const deadline = Date.now() + timeoutMs; !(await cluster.meshFormed()); await sleep(100)) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the NATS cluster's routes did not form a mesh within ${timeoutMs} ms`);
    }
  }
  return cluster;
}
