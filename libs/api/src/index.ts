// @lq/api: the REST API's JSON, one declaration for the control plane that builds it and the
// console and lqctl that read it. Types, the const lists of permission and role names, and the
// pure rules both sides apply (an execution refusal's exit code).
// snake_case throughout (the error body alone keeps its camelCase names).
export * from './access.js';
export type * from './audit.js';
export type * from './errors.js';
export * from './executions.js';
export type * from './guest.js';
export type * from './inventory.js';
export type * from './agent.js';
export type * from './distribution.js';
export type * from './telemetry.js';
