import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentBadge, agentBadge } from './agent-badge';
import { ErrorBoundary } from './error-boundary';
import { ErrorNotice } from './error-notice';
import { ApiError } from '../api/errors';

afterEach(cleanup);

function Broken(): never {
  throw new Error('cannot read properties of undefined');
}

describe('ErrorBoundary', () => {
  it('should show words and a way back instead of a blank page when a page throws', () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    render(
      <ErrorBoundary>
        <Broken />
      </ErrorBoundary>,
    );
    expect(screen.getByRole('alert').textContent).toContain('This page could not be shown.');
    expect(screen.getByText('cannot read properties of undefined')).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Back to the VM list' })).toBeTruthy();
  });
});

describe('ErrorNotice', () => {
  it('should render the permission a 403 names', () => {
    render(
      <ErrorNotice
        error={new ApiError(403, { code: 'PERMISSION_DENIED', permission: 'audit.read' })}
      />,
    );
    expect(screen.getByRole('alert').textContent).toContain('Permission missing: “audit.read”');
  });
});

describe('AgentBadge', () => {
  it('should map agent states to Connected, Not connected and Frozen', () => {
    expect(
      ['ready', 'disconnected', 'gone', undefined, 'frozen', 'connecting'].map(
        (s) => agentBadge(s).label,
      ),
    ).toEqual([
      'Connected',
      'Not connected',
      'Not connected',
      'Not connected',
      'Frozen',
      'Connecting',
    ]);
    render(<AgentBadge state="ready" />);
    expect(screen.getByText('Connected').className).toBe('badge badge-connected');
  });
});
