import { can, rolesLabel } from './auth/permissions';
import { useSession } from './auth/session-context';
import { ErrorBoundary } from './components/error-boundary';
import { ErrorNotice } from './components/error-notice';
import { Link } from './components/link';
import { AuditPage } from './pages/audit';
import { DashboardPage } from './pages/dashboard';
import { RolloutsPage } from './pages/rollouts';
import { SignInPage } from './pages/sign-in';
import { VmDetailPage } from './pages/vm-detail';
import { VmListPage } from './pages/vm-list';
import { parseRoute, useLocation } from './lib/router';
import { ApiError } from './api/errors';

export function App() {
  const session = useSession();
  const { path } = useLocation();
  const { me, loading, loadError } = session;

  if (loading) {
    return (
      <main className="signin">
        <p className="muted" role="status">
          <span className="spinner" aria-hidden="true" /> Signing in…
        </p>
      </main>
    );
  }
  if (!me) {
    // A stored session that cannot be checked (control plane down): say so, keep the session.
    if (loadError !== undefined && !(loadError instanceof ApiError && loadError.status === 401)) {
      return (
        <main className="signin">
          <div className="card">
            <ErrorNotice error={loadError} onRetry={() => window.location.reload()} />
            <button type="button" onClick={session.signOut}>
              Sign in again
            </button>
          </div>
        </main>
      );
    }
    return <SignInPage />;
  }

  const route = parseRoute(path);
  const auditor = can(me, 'audit.read');
  return (
    <div className="shell">
      <header className="topbar">
        <Link to="/" className="brand">
          LimiQuantix
        </Link>
        <nav aria-label="Main">
          <Link to="/" className={route.page === 'vms' || route.page === 'vm' ? 'active' : ''}>
            VMs
          </Link>
          <Link to="/dashboard" className={route.page === 'dashboard' ? 'active' : ''}>
            Dashboard
          </Link>
          {can(me, 'guest.agent.update') && (
            <Link to="/rollouts" className={route.page === 'rollouts' ? 'active' : ''}>
              Agent rollouts
            </Link>
          )}
          {auditor && (
            <Link to="/audit" className={route.page === 'audit' ? 'active' : ''}>
              Audit
            </Link>
          )}
        </nav>
        <div className="user">
          <span className="who" title={rolesLabel(me)}>
            {me.username}
            <span className="muted small"> · {rolesLabel(me) || 'no roles'}</span>
          </span>
          <button type="button" onClick={session.signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main className="content">
        <ErrorBoundary resetKey={path}>
          {route.page === 'vms' && <VmListPage />}
          {route.page === 'dashboard' && <DashboardPage />}
          {route.page === 'vm' && <VmDetailPage key={route.id} id={route.id} tab={route.tab} />}
          {route.page === 'rollouts' && <RolloutsPage key={route.id ?? ''} id={route.id} />}
          {route.page === 'audit' &&
            (auditor ? (
              <AuditPage />
            ) : (
              <div className="notice notice-error" role="alert">
                <strong>Permission missing: “audit.read” (read the audit trail).</strong>
                <p>Ask an administrator for the auditor role.</p>
              </div>
            ))}
          {route.page === 'not-found' && (
            <div className="notice">
              <strong>There is no page at {route.path}.</strong>{' '}
              <Link to="/">Go to the VM list</Link>
            </div>
          )}
        </ErrorBoundary>
      </main>
    </div>
  );
}
