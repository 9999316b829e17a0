import 'reflect-metadata';
import { describe, expect, it, jest } from '@jest/globals';
import { BadRequestException, ValidationPipe, type ArgumentMetadata } from '@nestjs/common';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { ApiValidationPipe } from './api-validation.pipe.js';

class OptionalDto {
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3600)
  timeout_seconds?: number;
}

class RequiredDto {
  @IsString()
  command!: string;
}

class DefaultedDto {
  @IsInt()
  @Min(1)
  limit: number = 0;
}

// A class as ES2022 compiles it: each field an own property of every instance, undefined.
class OwnFieldDto {
  @IsOptional()
  @IsInt()
  @Min(1)
  timeout_seconds?: number;

  constructor() {
    Object.defineProperty(this, 'timeout_seconds', {
      value: undefined,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
}

const pipe = () =>
  new ApiValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: true,
  });
const body = (metatype: new () => unknown): ArgumentMetadata => ({ type: 'body', metatype });

describe('ApiValidationPipe', () => {
  it('should pass an empty body its class accepts, every time, as an instance of the class', async () => {
    const p = pipe();
    for (let i = 0; i < 3; i++) {
      await expect(p.transform({}, body(OptionalDto))).resolves.toBeInstanceOf(OptionalDto);
      await expect(p.transform(undefined, body(OptionalDto))).resolves.toBeInstanceOf(OptionalDto);
    }
  });

  it('should still refuse bad fields after it has accepted an empty body of the class', async () => {
    const p = pipe();
    await p.transform({}, body(OptionalDto));
    await expect(p.transform({ timeout_seconds: 0 }, body(OptionalDto))).rejects.toBeInstanceOf(
      BadRequestException,
    );
    await expect(p.transform({ other: 1 }, body(OptionalDto))).rejects.toBeInstanceOf(
      BadRequestException,
    );
    await expect(p.transform({ timeout_seconds: 5 }, body(OptionalDto))).resolves.toEqual(
      Object.assign(new OptionalDto(), { timeout_seconds: 5 }),
    );
  });

  it('should refuse an empty body every time when its class needs a field or sets a bad default', async () => {
    const p = pipe();
    for (let i = 0; i < 2; i++) {
      await expect(p.transform({}, body(RequiredDto))).rejects.toBeInstanceOf(BadRequestException);
      await expect(p.transform({}, body(DefaultedDto))).rejects.toBeInstanceOf(BadRequestException);
    }
    await expect(p.transform({}, body(OptionalDto))).resolves.toBeInstanceOf(OptionalDto);
  });

  it('should judge an empty body once per class, also when the class declares its fields as own properties', async () => {
    const p = pipe();
    const full = jest.spyOn(
      ValidationPipe.prototype as unknown as { validate: () => unknown },
      'validate',
    );
    try {
      for (let i = 0; i < 3; i++) {
        await expect(p.transform({}, body(OwnFieldDto))).resolves.toBeInstanceOf(OwnFieldDto);
      }
      expect(full).toHaveBeenCalledTimes(1);
      await expect(p.transform({ timeout_seconds: 0 }, body(OwnFieldDto))).rejects.toBeInstanceOf(
        BadRequestException,
      );
      expect(full).toHaveBeenCalledTimes(2);
    } finally {
      full.mockRestore();
    }
  });
});
