import { ValidationPipe } from '@nestjs/common';
import type { ValidatorOptions } from 'class-validator';

/**
 * The global ValidationPipe, remembering which DTO classes an empty input satisfies. Most guest
 * calls send an empty body or query (`POST /api/vms/:id/ping` with `{}`), and class-validator
 * walks every DTO class it knows for each one (its inherited-rules search): the verdict on an
 * instance with no properties depends on its class alone, so it is computed once per class.
 * Anything with a property — a field sent, or a default the class sets — is validated in full.
 */
export class ApiValidationPipe extends ValidationPipe {
  private readonly validWhenEmpty = new Set<unknown>();

  protected override async validate(object: object, options?: ValidatorOptions) {
    const ctor = (object as { constructor?: unknown }).constructor;
    const empty = Object.keys(object).length === 0 && typeof ctor === 'function';
    if (empty && this.validWhenEmpty.has(ctor)) {
      return [];
    }
    const errors = await super.validate(object, options);
    if (empty && errors.length === 0) {
      this.validWhenEmpty.add(ctor);
    }
    return errors;
  }
}
