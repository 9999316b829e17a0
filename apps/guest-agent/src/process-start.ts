// When an agent started: AgentInfo.started_at and the origin of PongResponse.uptime_seconds. A
// host compares both with when it sent its requests (PROTOCOL.md §5) to tell a restarted agent,
// and fails the requests that look older than the agent. The executable's agent counts from its
// process's start (PROCESS_START), not from when the agent proper was loaded after the early
// phase (early-responder.ts): the requests the early phase kept were read by this process and
// are answered by it. Agents that share a process (sim-host) count from their own creation.

export interface AgentStart {
  /** AgentInfo.started_at. */
  at: Date;
  /** performance.now() at the start: uptime_seconds counts from here. */
  perfMs: number;
}

/** This process's start (performance.now() counts from the process's time origin). */
export const PROCESS_START: AgentStart = { at: new Date(performance.timeOrigin), perfMs: 0 };

/** Now, for an agent created in a process that was already running. */
export function startingNow(): AgentStart {
  return { at: new Date(), perfMs: performance.now() };
}
