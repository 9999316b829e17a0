import { ConsoleFiles } from './console-files.js';

/** The web console's providers: where its files are. */
export const CONSOLE_PROVIDERS = [{ provide: ConsoleFiles, useFactory: () => new ConsoleFiles() }];
