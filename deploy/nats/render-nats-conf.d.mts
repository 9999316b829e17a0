// Types for render-nats-conf.mjs (plain JS, so that it runs on any host without a build).

/** The node ids the checked-in auth.conf is rendered for. */
export declare const CHECKED_IN_NODE_IDS: string[];
export declare const CONTROL_PLANE_USER: string;
/** nats-server's environment variable holding the control plane's password. */
export declare const CONTROL_PLANE_PASSWORD_VAR: string;
/** `allow_responses` expiry of node daemons: how long a reply to a guest request may take. */
export declare const DEFAULT_RESPONSES_EXPIRE: string;

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
export declare const CONTROL_PLANE_PERMISSIONS: RolePermissions;
/** Throws RenderError for an empty list, a bad id, a duplicate, or a shared password variable. */
export declare function checkNodeIds(nodeIds: string[]): void;
/** auth.conf: the `authorization` block for these node ids. */
export declare function renderAuthConf(
  nodeIds: string[],
  options?: { responsesExpire?: string },
): string;
/** nats-server.conf: a single server that includes ./auth.conf. */
export declare function renderServerConf(): string;
