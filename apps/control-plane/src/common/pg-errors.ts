/** PostgreSQL's unique violation (as the driver, or TypeORM's QueryFailedError, carries it). */
export function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } } | undefined;
  return e?.code === '23505' || e?.driverError?.code === '23505';
}
