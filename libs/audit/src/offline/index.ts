// What verifies the audit trail without a database: checkpoints, the streaming chain verifier
// and the export format. No TypeORM, no Nest: lqctl bundles it for offline verification.
export * from './checkpoint.js';
export * from './chain-verifier.js';
export * from './export-format.js';
export { GENESIS_HASH, chainHash, canonicalJson, type ChainedContent } from '../hash-chain.js';
