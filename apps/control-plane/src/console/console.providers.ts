import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { ConsoleFiles } from './console-files.js';

/** The web console's providers: where its files are (LQ_CONSOLE_DIR or the nearest build). */
export const CONSOLE_PROVIDERS = [
  {
    provide: ConsoleFiles,
    inject: [CONTROL_PLANE_CONFIG],
    useFactory: (config: ControlPlaneConfig) => new ConsoleFiles(config.files.consoleDir),
  },
];
