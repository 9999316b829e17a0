import { ValidationPipe } from '@nestjs/common';
import type { ValidatorOptions } from 'class-validator';

/**
 * The global ValidationPipe, remembering which DTO classes an empty input satisfies. Most guest
 * calls send an empty body or query (`POST /api/vms/:id/ping` with `{}`), and class-validator
 * walks every DTO class it knows for each one (its inherited-rules search): the verdict on an
 * instance with no values depends on its class alone, so it is computed once per class.
 * "No values": its own properties are all undefined. Compiled for ES2022, a class declares each
 * field as an own property (`timeout_seconds;`, undefined), so an instance made from `{}` has
 * keys; what it has is the class's own, never the caller's (a parsed body or query holds no
 * undefined). Anything with a value — a field sent, or a default the class sets — is validated
 * in full.
 */
export class ApiValidationPipe extends ValidationPipe {
  private readonly validWhenEmpty = new Set<unknown>();

  protected override async validate(object: object, options?: ValidatorOptions) {
    const ctor = (object as { constructor?: unknown }).constructor;
    const empty = typeof ctor === 'function' && hasNoValues(object);
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

/** Whether every own property of `object` is undefined (or it has none). */
function hasNoValues(object: object): boolean {
  for (const k in object) {
    if (Object.hasOwn(object, k) && (object as Record<string, unknown>)[k] !== undefined) {
      return false;
    }
  }
  return true;
}
