import { isSubjectToken } from '@lq/proto';
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

/** Which VMs a fleet operation (a run, an agent rollout) targets, as its request body names them. */
export interface VmTargetSpec {
  vm_ids?: string[];
  project?: string;
  /** `env=prod,role=db`, or an object of label → value; every one must match. */
  labels?: string | Record<string, string>;
}

/**
 * Checks a fleet target: exactly one of VM ids (subject tokens, duplicates dropped), a project or
 * labels. `invalid` makes the caller's 400 naming the field.
 */
export function parseVmTarget(
  t: VmTargetSpec | undefined,
  invalid: (field: string, message: string) => Error,
): { vmIds?: string[]; project?: string; labels?: Record<string, string> } {
  const given = [t?.vm_ids, t?.project, t?.labels].filter((x) => x !== undefined).length;
  if (!t || given !== 1) {
    throw invalid('target', 'must name exactly one of vm_ids, project or labels');
  }
  if (t.vm_ids) {
    if (t.vm_ids.length === 0 || t.vm_ids.some((v) => !isSubjectToken(v))) {
      throw invalid('target.vm_ids', 'must be VM ids (1-128 letters, digits, _ or -)');
    }
    return { vmIds: [...new Set(t.vm_ids)] };
  }
  if (t.project !== undefined) {
    return { project: t.project };
  }
  return { labels: parseLabels(t.labels!, 'target.labels') };
}
