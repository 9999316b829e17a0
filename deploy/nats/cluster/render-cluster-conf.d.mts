// Types for render-cluster-conf.mjs (plain JS, so that it runs on any host without a build).

export declare const CLUSTER_NAME: string;
/** The user every route presents. */
export declare const ROUTE_USER: string;
/** nats-server's environment variable holding the route password (in double quotes). */
export declare const CLUSTER_PASSWORD_VAR: string;
/** nats-server's environment variable holding the route URLs (with the password). */
export declare const ROUTES_VAR: string;
/** The server names of deploy/docker-compose.yml, rendered into deploy/nats/cluster/. */
export declare const COMPOSE_SERVERS: string[];

/** A bad name, address, port or password, with a message meant for a person. */
export declare class ClusterRenderError extends Error {
  constructor(message: string);
}

export interface ClusterServerOptions {
  serverName: string;
  /** Address of every listener. Default 0.0.0.0. */
  host?: string;
  /** Client port. Default 4222. */
  port?: number;
  /** Monitoring port (/healthz). Default 8222. */
  httpPort?: number;
  /** Route port. Default 6222. */
  clusterPort?: number;
  /** The authorization file, relative to the rendered file. Default ../auth.conf. */
  authInclude?: string;
  /**
   * TLS of the client port and the routes (routes always verify each other's certificate).
   * Default: DEPLOY_TLS of render-nats-conf.mjs; null: none, for servers on one loopback only.
   */
  tls?: Partial<import('../render-nats-conf.mjs').NatsTls> | null;
}

/** One server's nats-server config. */
export declare function renderClusterServerConf(options: ClusterServerOptions): string;
/** LQ_NATS_CLUSTER_PASSWORD's value: the password, double-quoted for nats-server. */
export declare function clusterPasswordValue(password: string): string;
/** LQ_NATS_ROUTES's value for these `host:port` cluster addresses. */
export declare function routesValue(addresses: string[], password: string): string;
