import { Global, Inject, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { createDataSource, runMigrationsLocked } from './data-source.js';

/** The one DataSource; migrations run at start unless LQ_RUN_MIGRATIONS=false. */
@Global()
@Module({
  providers: [
    {
      provide: DataSource,
      inject: [CONTROL_PLANE_CONFIG],
      useFactory: async (config: ControlPlaneConfig) => {
        const ds = createDataSource(config.databaseUrl, config.databaseTls, config.databasePool);
        await ds.initialize();
        if (config.runMigrations) {
          const applied = await runMigrationsLocked(ds);
          if (applied.length > 0) {
            new Logger('database').log(
              `applied migrations: ${applied.map((m) => m.name).join(', ')}`,
            );
          }
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
