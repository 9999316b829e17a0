import { useEffect, useState } from 'react';

export const VM_TABS = ['overview', 'agent', 'files', 'history'] as const;
export type VmTab = (typeof VM_TABS)[number];

export type Route =
  | { page: 'vms' }
  | { page: 'vm'; id: string; tab: VmTab }
  | { page: 'audit' }
  | { page: 'dashboard' }
  | { page: 'rollouts'; id?: string }
  | { page: 'not-found'; path: string };

/** The page a path shows: /, /vms/:id[/:tab], /dashboard, /audit, /rollouts[/:id]. */
export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(safeDecode);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === 'vms')) {
    return { page: 'vms' };
  }
  if (parts[0] === 'vms' && parts[1] && parts.length <= 3) {
    const tab = (parts[2] ?? 'overview') as VmTab;
    if (VM_TABS.includes(tab)) {
      return { page: 'vm', id: parts[1], tab };
    }
  }
  if (parts.length === 1 && parts[0] === 'audit') {
    return { page: 'audit' };
  }
  if (parts.length === 1 && parts[0] === 'dashboard') {
    return { page: 'dashboard' };
  }
  if (parts[0] === 'rollouts' && parts.length <= 2) {
    return parts[1] ? { page: 'rollouts', id: parts[1] } : { page: 'rollouts' };
  }
  return { page: 'not-found', path };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function vmPath(id: string, tab: VmTab = 'overview'): string {
  return `/vms/${encodeURIComponent(id)}${tab === 'overview' ? '' : `/${tab}`}`;
}

const CHANGE = 'lq:navigate';

export function navigate(to: string): void {
  if (to !== window.location.pathname + window.location.search) {
    window.history.pushState(null, '', to);
    window.dispatchEvent(new Event(CHANGE));
  }
}

/** The current location (path and query), re-rendered on navigation and back/forward. */
export function useLocation(): { path: string; search: string } {
  const read = () => ({ path: window.location.pathname, search: window.location.search });
  const [loc, setLoc] = useState(read);
  useEffect(() => {
    const update = () => setLoc(read());
    window.addEventListener('popstate', update);
    window.addEventListener(CHANGE, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(CHANGE, update);
    };
  }, []);
  return loc;
}
