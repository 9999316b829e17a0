import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditExecutionView } from '@lq/api';
import { OutputNotices } from './executions';

afterEach(cleanup);

const row = (over: Partial<AuditExecutionView>) =>
  ({ project_id: 'payments', output_redaction: null, ...over }) as AuditExecutionView;

describe('OutputNotices', () => {
  it('should say the output is withheld and which permission reads it', () => {
    render(<OutputNotices execution={row({ output_withheld: true, stdout: null })} />);
    expect(screen.getByRole('note').textContent).toBe(
      'Output withheld: reading stored output needs audit.read_output on project payments.',
    );
  });

  it('should say how many secrets were redacted, and nothing when none were', () => {
    const redaction = {
      redacted: true as const,
      stdout: 2,
      stderr: 1,
      stdout_sha256: '',
      stderr_sha256: '',
    };
    render(<OutputNotices execution={row({ output_redaction: redaction })} />);
    expect(screen.getByRole('note').textContent).toBe(
      '3 secrets were redacted from the stored output.',
    );
    cleanup();
    render(<OutputNotices execution={row({})} />);
    expect(screen.queryByRole('note')).toBeNull();
  });
});
