import { useState } from 'react';
import type { FormEvent } from 'react';
import { ApiError, UserMessage } from '../api/errors';
import { useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';

/** Sign-in errors in the words a person expects on a sign-in form. */
function signInProblem(err: unknown, method: 'password' | 'api_key'): unknown {
  if (err instanceof ApiError && err.status === 401) {
    return new UserMessage(
      method === 'password'
        ? 'Wrong username or password.'
        : 'This API key is not valid (unknown, revoked or expired).',
    );
  }
  return err;
}

export function SignInPage() {
  const { signInWithPassword, signInWithKey, loadError } = useSession();
  const [method, setMethod] = useState<'password' | 'api_key'>('password');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (method === 'password') {
        await signInWithPassword(username, password);
      } else {
        await signInWithKey(key);
      }
    } catch (err) {
      setError(signInProblem(err, method));
    } finally {
      setBusy(false);
    }
  }

  const shown =
    error ?? (loadError instanceof ApiError && loadError.status !== 401 ? loadError : undefined);
  return (
    <main className="signin">
      <form className="card form" onSubmit={(e) => void submit(e)} aria-label="Sign in">
        <h1>LimiQuantix</h1>
        <p className="muted">Sign in to the console</p>
        <div className="segmented" role="tablist">
          <button
            type="button"
            role="tab"
            aria-selected={method === 'password'}
            onClick={() => setMethod('password')}
          >
            Username and password
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={method === 'api_key'}
            onClick={() => setMethod('api_key')}
          >
            API key
          </button>
        </div>
        {method === 'password' ? (
          <>
            <label>
              Username
              <input
                name="username"
                autoComplete="username"
                value={username}
                onChange={(e) => setUsername(e.target.value)}
                required
              />
            </label>
            <label>
              Password
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </label>
          </>
        ) : (
          <label>
            API key
            <input
              name="api_key"
              type="password"
              autoComplete="off"
              placeholder="lq_…"
              value={key}
              onChange={(e) => setKey(e.target.value)}
              required
            />
          </label>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {shown !== undefined && <ErrorNotice error={shown} />}
        <p className="muted small">
          The session is kept in this browser tab only and ends when you close it.
        </p>
      </form>
    </main>
  );
}
