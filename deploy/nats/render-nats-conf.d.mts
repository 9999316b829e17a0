// Types for render-nats-conf.mjs (plain JS, so that it runs on any host without a build).

/** The node ids the checked-in auth.conf is rendered for. */
export declare const CHECKED_IN_NODE_IDS: string[];
export declare const CONTROL_PLANE_USER: string;
/** nats-server's environment variable holding the control plane's password. */
export declare const CONTROL_PLANE_PASSWORD_VAR: string;
/** `allow_responses` expiry of node daemons: how long a reply to a guest request may take. */
export declare const DEFAULT_RESPONSES_EXPIRE: string;
export declare const DEFAULT_RESPONSES_MAX: number;

/** A bad node id or option, with a message meant for a person. */
export declare class RenderError extends Error {
  constructor(message: string);
}

export interface RolePermissions {
  publish: string[];
  subscribe: string[];
}

/** A node daemon's NATS user (its NATS_USER): `lq-node-<nodeId>`. */
export declare function nodeUser(nodeId: string): string;
/** nats-server's environment variable holding a node daemon's password. */
export declare function nodePasswordVar(nodeId: string): string;
export declare function nodePermissions(nodeId: string): RolePermissions;
export declare const CONTROL_PLANE_PERMISSIONS: RolePermissions & { publishDeny: string[] };
/** The JetStream stream of signed audit checkpoints, and its subject. */
export declare const AUDIT_CHECKPOINT_STREAM: string;
export declare const AUDIT_CHECKPOINT_SUBJECT: string;
/** Throws RenderError for an empty list, a bad id, a duplicate, or a shared password variable. */
export declare function checkNodeIds(nodeIds: string[]): void;
/** auth.conf: the `authorization` block for these node ids. */
export declare function renderAuthConf(
  nodeIds: string[],
  options?: { responsesExpire?: string; responsesMax?: number },
): string;
/** Where nats-server finds its certificate, key and CA; verifyClients asks clients for one too. */
export interface NatsTls {
  certFile: string;
  keyFile: string;
  caFile: string;
  verifyClients: boolean;
}
/** The paths of deploy/docker-compose.yml's NATS containers (/etc/nats-tls/…), no client certs. */
export declare const DEPLOY_TLS: NatsTls;
/** TLS options with DEPLOY_TLS's defaults filled in, or null (no TLS); RenderError if bad. */
export declare function checkTls(tls: Partial<NatsTls> | null | false): NatsTls | null;
/** make-certs.sh's layout in a directory: tls.crt, tls.key, ca.crt. */
export declare function tlsFilesIn(dir: string): Pick<NatsTls, 'certFile' | 'keyFile' | 'caFile'>;
/** A nats-server `tls {}` block. */
export declare function renderTlsBlock(
  tls: NatsTls,
  options?: { indent?: string; verify?: boolean },
): string;
/** The client-port TLS block with its comment (or the comment that there is none). */
export declare function renderClientTls(tls: NatsTls | null): string;
/**
 * nats-server.conf: a single server that includes ./auth.conf, listening on `listen` (default
 * 0.0.0.0:4222) with TLS (default DEPLOY_TLS; null: none, for a server on loopback only).
 */
export declare function renderServerConf(options?: {
  listen?: string;
  tls?: Partial<NatsTls> | null;
}): string;
