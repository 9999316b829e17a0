// The migrations of libs/auth's tables (what the control plane's data source lists): a subpath
// of its own, so a migration job or a bench need not load the Nest guards of the main entry.
export { SessionsAndSignInLimits1764806400000 } from './1764806400000-SessionsAndSignInLimits.js';
export { OutputAuditorRole1764897318100 } from './1764897318100-OutputAuditorRole.js';
