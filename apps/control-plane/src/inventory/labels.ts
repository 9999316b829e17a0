import { InventoryException } from './inventory.exception.js';

const LABEL = /^[A-Za-z0-9_./-]{1,63}$/;

/**
 * Parses `env=prod,role=db` (or an object) into label → value; 400 naming `field` and the bad
 * pair. Keys and values are 1-63 of A-Z a-z 0-9 _ . / -.
 */
export function parseLabels(
  spec: string | Record<string, string>,
  field = 'labels',
): Record<string, string> {
  const pairs =
    typeof spec === 'string'
      ? spec
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean)
          .map((p) => {
            const eq = p.indexOf('=');
            if (eq <= 0) {
              throw InventoryException.invalid(`${field} ${JSON.stringify(p)} is not key=value`);
            }
            return [p.slice(0, eq), p.slice(eq + 1)] as [string, string];
          })
      : Object.entries(spec);
  if (pairs.length === 0) {
    throw InventoryException.invalid(`${field} names no label`);
  }
  for (const [k, v] of pairs) {
    if (!LABEL.test(k) || typeof v !== 'string' || !LABEL.test(v)) {
      throw InventoryException.invalid(
        `${field} ${k}=${String(v)}: keys and values are 1-63 of A-Z a-z 0-9 _ . / -`,
      );
    }
  }
  return Object.fromEntries(pairs);
}
