import { useState } from 'react';
import type { FormEvent } from 'react';
import type { PasswordSetView } from '@lq/api';
import type { ApiClient } from '../api/client';
import { UserMessage } from '../api/errors';
import { ErrorNotice } from './error-notice';
import { Modal } from './modal';

const USERNAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/** What is wrong with a password form, if anything (the server checks again). */
export function passwordProblem(username: string, password: string, again: string) {
  if (!USERNAME.test(username)) {
    return 'Enter the guest user’s name (letters, digits, “_”, “.”, “-”).';
  }
  if (password.length === 0) {
    return 'Enter the new password.';
  }
  if (password !== again) {
    return 'The two passwords differ.';
  }
  return undefined;
}

/**
 * Sets a guest user's password. The password lives only in this dialog's inputs: it is sent
 * once, never shown, never kept (the fields are emptied whatever the answer, and the browser is
 * told not to remember it).
 */
export function PasswordDialog({
  api,
  vmId,
  vmLabel,
  onDone,
  onClose,
}: {
  api: ApiClient;
  vmId: string;
  vmLabel: string;
  onDone: (message: string) => void;
  onClose: () => void;
}) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const problem = passwordProblem(username, password, again);
    if (problem) {
      setError(new UserMessage(problem));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.post<PasswordSetView>(`/api/vms/${encodeURIComponent(vmId)}/password`, {
        username,
        password,
      });
      onDone(`Password set for ${r.username} on ${vmLabel}.`);
    } catch (err) {
      setError(err);
    } finally {
      setPassword('');
      setAgain('');
      setBusy(false);
    }
  }

  return (
    <Modal title={`Reset a password on ${vmLabel}`} onClose={onClose}>
      <form
        className="form"
        aria-label="Reset password"
        autoComplete="off"
        onSubmit={(e) => void submit(e)}
      >
        <label>
          Guest user
          <input
            name="username"
            autoComplete="off"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </label>
        <label>
          New password
          <input
            name="new_password"
            type="password"
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <label>
          New password again
          <input
            name="new_password_again"
            type="password"
            autoComplete="new-password"
            value={again}
            onChange={(e) => setAgain(e.target.value)}
          />
        </label>
        <p className="muted small">
          Set with chpasswd in the guest. It is never shown again, stored or written to the audit
          trail.
        </p>
        <p className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Setting…' : 'Set password'}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </p>
        {error !== undefined && <ErrorNotice error={error} />}
      </form>
    </Modal>
  );
}
