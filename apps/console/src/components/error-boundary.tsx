import { Component } from 'react';
import type { ErrorInfo, ReactNode } from 'react';

interface State {
  error?: Error;
}

/** Whatever a page throws while rendering, the user sees words and a way on, never a blank. */
export class ErrorBoundary extends Component<{ children: ReactNode; resetKey?: string }, State> {
  override state: State = {};

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error('console page failed', error, info.componentStack);
  }

  override componentDidUpdate(prev: { resetKey?: string }): void {
    if (this.state.error && prev.resetKey !== this.props.resetKey) {
      this.setState({ error: undefined });
    }
  }

  override render(): ReactNode {
    if (!this.state.error) {
      return this.props.children;
    }
    return (
      <div className="notice notice-error" role="alert">
        <h2>This page could not be shown.</h2>
        <p>{this.state.error.message || 'An unexpected error happened in the console.'}</p>
        <p className="actions">
          <button type="button" onClick={() => this.setState({ error: undefined })}>
            Try again
          </button>
          <a className="button" href="/">
            Back to the VM list
          </a>
        </p>
      </div>
    );
  }
}
