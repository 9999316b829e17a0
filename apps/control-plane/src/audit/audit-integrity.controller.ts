import { Controller, Get, Inject, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { Request, Response } from 'express';
import type { AuditPublicKey, VerifyReport } from '@lq/api';
import {
  AUTH_AUDIT_HOOK,
  AuthException,
  Public,
  RequirePermission,
  holdsGlobally,
  originOf,
  type AuthAuditHook,
} from '@lq/auth';
import { CurrentCaller, type Caller } from '../common/caller.js';
import { AuditCheckpointer } from './audit-checkpointer.js';
import { AuditIntegrityService } from './audit-integrity.service.js';
import { VerifyQueryDto } from './dto/verify-query.dto.js';

/**
 * Whether the audit trail is whole: verification against the signed checkpoints, the export
 * an auditor verifies offline, and the public key both are checked with.
 */
@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/audit')
export class AuditIntegrityController {
  constructor(
    @Inject(AuditIntegrityService) private readonly integrity: AuditIntegrityService,
    @Inject(AuditCheckpointer) private readonly checkpointer: AuditCheckpointer,
    @Inject(AUTH_AUDIT_HOOK) private readonly hook: AuthAuditHook,
  ) {}

  @Get('public-key')
  @Public()
  @ApiOperation({
    summary:
      'The Ed25519 public key audit checkpoints are signed with (lqctl audit verify FILE --public-key)',
  })
  @ApiAnswers(200, 'AuditPublicKey', [404])
  publicKey(): AuditPublicKey {
    return this.checkpointer.publicKey();
  }

  @Get('verify')
  @RequirePermission('audit.read')
  @ApiOperation({
    summary:
      'Recompute the hash chain from the first row and compare it with the latest signed checkpoint; names the first missing or altered row (progress=true: NDJSON progress lines, then the report)',
  })
  @ApiProduces('application/json', 'application/x-ndjson')
  @ApiAnswers(200, {
    'application/json': 'VerifyReport',
    'application/x-ndjson': {
      type: 'string',
      description: 'Progress lines, then the VerifyReport',
    },
  })
  async verify(
    @CurrentCaller() caller: Caller,
    @Query() q: VerifyQueryDto,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<VerifyReport | undefined> {
    await this.requireGlobal(caller, req);
    if (q.progress !== 'true') {
      return this.integrity.verify();
    }
    res.status(200);
    res.setHeader('Content-Type', 'application/x-ndjson');
    res.flushHeaders();
    try {
      const report = await this.integrity.verify((rows, lastSeq) => {
        res.write(`${JSON.stringify({ progress: { rows, last_seq: lastSeq } })}\n`);
      });
      res.end(`${JSON.stringify({ report })}\n`);
    } catch (err) {
      res.destroy(err as Error);
    }
    return undefined;
  }

  @Get('export')
  @RequirePermission('audit.read')
  @ApiOperation({
    summary:
      'Every audit row with its hashes and every signed checkpoint, as NDJSON (lq-audit-export/1) for offline verification: lqctl audit verify FILE --public-key K',
  })
  @ApiProduces('application/x-ndjson')
  @ApiAnswers(200, {
    'application/x-ndjson': {
      type: 'string',
      description: 'The chain’s rows, one per line, then its checkpoints',
    },
  })
  async export(
    @CurrentCaller() caller: Caller,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    await this.requireGlobal(caller, req);
    const lines = this.integrity.exportLines();
    // The first line before the headers go out: a database that is away is a clean error.
    const first = await lines.next();
    res.status(200);
    res.setHeader('Content-Type', 'application/x-ndjson');
    res.setHeader('Content-Disposition', 'attachment; filename="audit-export.ndjson"');
    try {
      if (!first.done) {
        res.write(first.value);
      }
      for await (const line of lines) {
        if (res.destroyed) {
          break;
        }
        if (!res.write(line)) {
          await new Promise<void>((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
        }
      }
      res.end();
    } catch (err) {
      // Headers are out: cut the connection so a partial export is not taken for a whole one
      // (its end line is missing too, which lqctl audit verify reports).
      res.destroy(err as Error);
    }
  }

  /** audit.read on every project (the chain spans them all); a refusal is audited. */
  private async requireGlobal(caller: Caller, req: Request): Promise<void> {
    if (!holdsGlobally(caller.principal, 'audit.read')) {
      const where = 'on every project (the chain spans them all)';
      await this.hook.denied(originOf(req), caller.principal, 'audit.read', where);
      throw AuthException.denied('audit.read', where);
    }
  }
}
