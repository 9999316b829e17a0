import { Module } from '@nestjs/common';
import { ConsoleController } from './console.controller.js';
import { CONSOLE_PROVIDERS } from './console.providers.js';

/** The web console's files; imported last, since its catch-all must follow every API route. */
@Module({ providers: CONSOLE_PROVIDERS, controllers: [ConsoleController] })
export class ConsoleModule {}
