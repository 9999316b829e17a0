import { POLICY_NAMES, type PolicyName } from '@lq/proto/wire';

/** Operation names as policy lists name them (the operation table's policy names). */
export const OPERATIONS: readonly PolicyName[] = POLICY_NAMES;
export type OperationName = PolicyName;
