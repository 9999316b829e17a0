export type AgentBadgeKind = 'connected' | 'not-connected' | 'frozen' | 'connecting';

/** The badge an inventory agent state shows as. */
export function agentBadge(state: string | undefined): { kind: AgentBadgeKind; label: string } {
  switch (state) {
    case 'ready':
      return { kind: 'connected', label: 'Connected' };
    case 'frozen':
      return { kind: 'frozen', label: 'Frozen' };
    case 'connecting':
      return { kind: 'connecting', label: 'Connecting' };
    default:
      return { kind: 'not-connected', label: 'Not connected' };
  }
}

export function AgentBadge({ state }: { state: string | undefined }) {
  const b = agentBadge(state);
  return (
    <span className={`badge badge-${b.kind}`} title={`agent state: ${state || 'unknown'}`}>
      {b.label}
    </span>
  );
}
