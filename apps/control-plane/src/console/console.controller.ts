import { Controller, Get, Inject, NotFoundException, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { relative } from 'node:path';
import type { Request, Response } from 'express';
import { Public } from '@lq/auth';
import { ConsoleFiles, isApiPath, looksLikeFile } from './console-files.js';

// The console talks only to this origin; styles are set inline by React for the usage bars.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LimiQuantix console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>The web console is not built</h1>
<p>This control plane serves the console from <code>dist/console</code> (or <code>LQ_CONSOLE_DIR</code>), which does not exist yet.
Build it with <code>node scripts/build-console.mjs</code> (<code>npm start</code> does this for you) and reload.</p>
<p>The REST API is at <a href="/api/docs">/api/docs</a>.</p>
</body></html>
`;

/**
 * Serves the web console (a single-page app) at `/`: its files from dist/console, and
 * index.html for any other path that is not the API's, so deep links such as /vms/vm-1 work.
 * Public: the files hold no data; every API call the console makes carries the user's token.
 * Listed last in CONTROLLERS, so every API route is matched before this catch-all.
 */
@ApiExcludeController()
@Public()
@Controller()
export class ConsoleController {
  constructor(@Inject(ConsoleFiles) private readonly files: ConsoleFiles) {}

  @Get('{*path}')
  serve(@Req() req: Request, @Res() res: Response): void {
    const path = req.path;
    if (isApiPath(path)) {
      throw new NotFoundException(`Cannot ${req.method} ${path}`);
    }
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const dir = this.files.dir();
    if (!dir) {
      res.status(503).type('html').setHeader('Cache-Control', 'no-store').send(NOT_BUILT);
      return;
    }
    const file = path === '/' ? undefined : ConsoleFiles.fileOf(dir, path);
    if (file) {
      // Vite names bundled assets by content hash: they never change under the same name.
      const immutable = path.startsWith('/assets/');
      res.setHeader(
        'Cache-Control',
        immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
      res.sendFile(relative(dir, file), { root: dir, dotfiles: 'deny', cacheControl: false });
      return;
    }
    if (looksLikeFile(path)) {
      throw new NotFoundException(`Cannot ${req.method} ${path}`);
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Content-Security-Policy', CSP);
    res.sendFile('index.html', { root: dir, cacheControl: false });
  }
}
