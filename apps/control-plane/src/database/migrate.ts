// Migrations only, for a one-shot job before the replicas start (they then run with
// LQ_RUN_MIGRATIONS=false): `node dist/tsc/apps/control-plane/src/database/migrate.js`
// applies every pending migration; `--revert` undoes the last one. Exit 0 on success, 1 on a
// failed migration, 2 on bad configuration. With DATABASE_MIGRATION_URL it connects as that
// (owner) role and then grants DATABASE_URL's role what replicas need (roles.ts).
import 'reflect-metadata';
import { ConfigError } from '@lq/runtime';
import { migrationUrl, parseDatabaseEnv } from '../config/env.schema.js';
import { createDataSource, runMigrationsLocked } from './data-source.js';
import { grantRuntimeRole, userOfUrl } from './roles.js';

async function main(): Promise<number> {
  // DATABASE_URL and DATABASE_SSL_*, checked as the control plane checks them.
  const { url, tls } = parseDatabaseEnv(process.env);
  const ownerUrl = migrationUrl(process.env, url);
  const ds = createDataSource(ownerUrl ?? url, tls);
  await ds.initialize();
  try {
    if (process.argv.includes('--revert')) {
      await ds.undoLastMigration({ transaction: 'each' });
      process.stdout.write('reverted the last migration\n');
    } else {
      let granted: string[] = [];
      const applied = await runMigrationsLocked(ds, async () => {
        granted = ownerUrl ? await grantRuntimeRole(ds, userOfUrl(url)) : [];
      });
      process.stdout.write(
        applied.length > 0
          ? `applied migrations: ${applied.map((m) => m.name).join(', ')}\n`
          : 'database is up to date\n',
      );
      if (ownerUrl) {
        process.stdout.write(`granted ${userOfUrl(url)}: ${granted.join(', ')}\n`);
      }
    }
  } finally {
    await ds.destroy();
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`migrate: ${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
