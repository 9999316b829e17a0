import type { StreamStatus } from '../api/sse';
import { ErrorNotice } from './error-notice';

/** "Live", "Reconnecting in 4 s", or why the stream stopped. */
export function StreamStatusLine({ status, what }: { status: StreamStatus; what: string }) {
  switch (status.state) {
    case 'open':
      return (
        <span className="live" role="status">
          <span className="dot" aria-hidden="true" /> Live
        </span>
      );
    case 'connecting':
      return (
        <span className="muted" role="status">
          Connecting…
        </span>
      );
    case 'retrying':
      return (
        <span className="notice-inline" role="status">
          {what} lost its connection; reconnecting in {Math.ceil(status.inMs / 1000)} s…
        </span>
      );
    case 'stopped':
      return <ErrorNotice error={status.error} />;
  }
}
