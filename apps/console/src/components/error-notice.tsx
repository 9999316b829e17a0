import { describeError } from '../api/errors';

/** An API or network error in words, with what to do about it. */
export function ErrorNotice({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const words = describeError(error);
  return (
    <div className="notice notice-error" role="alert">
      <strong>{words.title}</strong>
      {words.detail && <p>{words.detail}</p>}
      {words.reference && <p className="muted small">{words.reference}</p>}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
