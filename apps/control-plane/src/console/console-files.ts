import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the built console lives: LQ_CONSOLE_DIR, else the nearest `dist/console` above this
 * module (dist/tsc/apps/control-plane/src/console/ when built, apps/control-plane/src/console/
 * under ts-jest). Looked up per request until found, so building the console after the control
 * plane started is enough.
 */
export class ConsoleFiles {
  private found?: string;

  constructor(
    private readonly configured?: string,
    private readonly from = dirname(fileURLToPath(import.meta.url)),
  ) {}

  /** The directory holding index.html, or undefined when the console is not built. */
  dir(): string | undefined {
    if (this.found && existsSync(join(this.found, 'index.html'))) {
      return this.found;
    }
    this.found = undefined;
    if (this.configured) {
      const dir = resolve(this.configured);
      this.found = existsSync(join(dir, 'index.html')) ? dir : undefined;
      return this.found;
    }
    for (let d = this.from; d !== dirname(d); d = dirname(d)) {
      const candidate = join(d, 'dist', 'console');
      if (existsSync(join(candidate, 'index.html'))) {
        this.found = candidate;
        return candidate;
      }
    }
    return undefined;
  }

  /**
   * The file a URL path names inside `dir`, if it is a regular file there. Dot segments are
   * resolved first and anything that would leave `dir` is refused.
   */
  static fileOf(dir: string, urlPath: string): string | undefined {
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return undefined;
    }
    if (decoded.includes('\0')) {
      return undefined;
    }
    const file = resolve(dir, `.${decoded.startsWith('/') ? '' : '/'}${decoded}`);
    if (!file.startsWith(dir + sep)) {
      return undefined;
    }
    try {
      return statSync(file).isFile() ? file : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Paths that belong to the API and operations endpoints, never to the console. */
export function isApiPath(path: string): boolean {
  return /^\/(api|health|metrics|downloads|limiquantix\.[^/]*)(\/|$)/.test(path);
}

/** A path whose last segment has an extension asks for a file: no index.html fallback. */
export function looksLikeFile(path: string): boolean {
  return /\.[A-Za-z0-9]{1,8}$/.test(path.split('/').pop() ?? '');
}
