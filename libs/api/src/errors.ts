/**
 * Every REST failure (README: audit trail, errors). Internals are never sent: the server logs
 * them under `correlationId`. This one body keeps the camelCase it has always had.
 */
export interface ErrorBody {
  statusCode: number;
  /** INVALID_REQUEST, UNAUTHENTICATED, PERMISSION_DENIED, VM_NOT_FOUND, AGENT_ERROR, … */
  code: string;
  message: string;
  correlationId: string;
  /** On a 403: the permission (or limit) that was missing. */
  permission?: string;
  /** On an agent's refusal: the agent's own code. */
  agentCode?: string;
}

/** GET /health (public) */
export interface HealthView {
  status: 'ok' | 'unavailable';
  database: 'ok' | 'unavailable';
  nats: 'ok' | 'unavailable';
}
