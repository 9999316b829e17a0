import { Controller, Get, Inject, NotFoundException, Param, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { Request, Response } from 'express';
import type { AgentDownloadView, AgentDownloadsView } from '@lq/api';
import { Public } from '@lq/auth';
import { AgentReleases, SHORT_NAMES, type AgentRelease } from './agent-releases.js';

const TYPES: Record<string, string> = {
  SHA256SUMS: 'text/plain; charset=utf-8',
  'release.json': 'application/json',
  'install-agent.sh': 'text/x-shellscript; charset=utf-8',
};

/**
 * The guest agent's release files: `/downloads/agent/latest/linux-amd64` (the seed's curl),
 * `/downloads/agent/<version>/<file>`, and listings. Public on purpose: a guest at first boot
 * (cloud-init, install-agent.sh) has no credentials, the files hold no secret (the same
 * executables and packages are published anyway), and SHA256SUMS, which install-agent.sh
 * verifies each download against, comes from the same origin. Only files a release's SHA256SUMS
 * lists are served, by exact name: no path reaches the filesystem.
 */
@ApiTags('downloads')
@Public()
@Controller('downloads/agent')
export class DownloadsController {
  constructor(@Inject(AgentReleases) private readonly releases: AgentReleases) {}

  @Get()
  @ApiOperation({ summary: 'Agent releases on offer, newest first' })
  @ApiAnswers(200, 'AgentDownloadsView')
  index(): AgentDownloadsView {
    const all = this.releases.list();
    return { latest: all[0]?.version ?? null, versions: all.map((r) => r.version) };
  }

  @Get(':version')
  @ApiOperation({ summary: "A release's files with their sha256 (version or latest)" })
  @ApiAnswers(200, 'AgentDownloadView', [404])
  release(@Param('version') version: string): AgentDownloadView {
    const release = this.find(version);
    return {
      version: release.version,
      commit: release.commit,
      files: [...release.files].map(([name, sha256]) => ({ name, sha256 })),
      aliases: Object.fromEntries(
        Object.entries(SHORT_NAMES).filter(([, file]) => release.files.has(file)),
      ),
    };
  }

  @Get(':version/:name')
  @ApiOperation({
    summary: 'One file of a release: a package, an executable (linux-amd64 …), SHA256SUMS',
  })
  @ApiAnswers(
    200,
    { 'application/octet-stream': { type: 'string', format: 'binary' } },
    [404],
    'The file (a package, an executable, SHA256SUMS)',
  )
  file(
    @Param('version') version: string,
    @Param('name') name: string,
    @Req() req: Request,
    @Res() res: Response,
  ): void {
    const release = this.find(version);
    const file = this.releases.download(release, name);
    if (!file) {
      throw new NotFoundException(
        `release ${release.version} has no file ${JSON.stringify(name)}: one of ${[
          ...Object.keys(SHORT_NAMES),
          ...release.files.keys(),
          'SHA256SUMS',
        ].join(', ')}`,
      );
    }
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Type', TYPES[file.name] ?? 'application/octet-stream');
    if (!TYPES[file.name]) {
      res.setHeader('Content-Disposition', `attachment; filename="${file.name}"`);
    }
    if (file.sha256) {
      res.setHeader('X-Checksum-Sha256', file.sha256);
      res.setHeader('ETag', `"${file.sha256}"`);
    }
    // `latest` moves; a versioned URL never changes.
    res.setHeader('Cache-Control', version === 'latest' ? 'no-cache' : 'public, max-age=86400');
    res.sendFile(file.path, { cacheControl: false, lastModified: false, etag: false }, (err) => {
      if (err && !res.headersSent) {
        req.next?.(err);
      }
    });
  }

  private find(version: string): AgentRelease {
    const release = this.releases.release(version);
    if (!release) {
      const versions = this.releases.list().map((r) => r.version);
      throw new NotFoundException(
        versions.length === 0
          ? `no agent release is published here (LQ_AGENT_DOWNLOADS_DIR=${this.releases.root() ?? 'unset'}; npm run package builds one into dist/packages)`
          : `no agent release ${JSON.stringify(version)}: latest or one of ${versions.join(', ')}`,
      );
    }
    return release;
  }
}
