import { Global, Inject, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { createDataSource, runMigrationsLocked } from './data-source.js';
import { grantRuntimeRole, leastPrivilegeProblems } from './roles.js';

/**
 * Applies pending migrations: through DATABASE_MIGRATION_URL (the owner role) when it is set,
 * then grants DATABASE_URL's role what replicas need (roles.ts); else through DATABASE_URL.
 */
async function migrate(config: ControlPlaneConfig, ds: DataSource, log: Logger): Promise<void> {
  let applied;
  if (config.databaseMigrationUrl) {
    const owner = createDataSource(config.databaseMigrationUrl, config.databaseTls);
    await owner.initialize();
    try {
      const [me] = await ds.query<Array<{ role: string }>>('SELECT current_user AS role');
      applied = await runMigrationsLocked(owner, () => grantRuntimeRole(owner, me!.role));
    } finally {
      await owner.destroy();
    }
  } else {
    applied = await runMigrationsLocked(ds);
  }
  if (applied.length > 0) {
    log.log(`applied migrations: ${applied.map((m) => m.name).join(', ')}`);
  }
}

/**
 * The one DataSource; migrations run at start unless LQ_RUN_MIGRATIONS=false. Start-up says
 * (or with LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE refuses) when DATABASE_URL's role could change
 * or delete audit rows.
 */
@Global()
@Module({
  providers: [
    {
      provide: DataSource,
      inject: [CONTROL_PLANE_CONFIG],
      useFactory: async (config: ControlPlaneConfig) => {
        const log = new Logger('database');
        const ds = createDataSource(config.databaseUrl, config.databaseTls, config.databasePool);
        await ds.initialize();
        if (config.runMigrations) {
          await migrate(config, ds, log);
        }
        const problems = await leastPrivilegeProblems(ds);
        if (problems.length > 0) {
          const message = `DATABASE_URL: ${problems.join('; ')}. A replica could change or delete audit rows: run migrations as an owner role (DATABASE_MIGRATION_URL) and the replicas as a role granted only what they need (README: database roles)`;
          if (config.databaseRequireLeastPrivilege) {
            await ds.destroy();
            throw new Error(`LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE=true: ${message}`);
          }
          log.warn(message);
        }
        return ds;
      },
    },
  ],
  exports: [DataSource],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  async onApplicationShutdown(): Promise<void> {
    if (this.ds.isInitialized) {
      await this.ds.destroy();
    }
  }
}
