export * from './audit-record.js';
export * from './audit.exception.js';
export * from './audit.repository.js';
export * from './audit-writer.js';
export * from './audit.service.js';
export * from './hash-chain.js';
export * from './redaction.js';
export * from './output-redactor.js';
export { intentDigestOfRecord } from './audit-rows.js';
export * from './checkpoint.repository.js';
export {
  ChainVerifier,
  EXPORT_FORMAT,
  checkpointKeyId,
  checkpointPublicKey,
  checkpointProblem,
  parseCheckpoint,
  signCheckpoint,
  type AuditCheckpoint,
  type ChainReport,
  type CheckpointRef,
  type ExportHeader,
  type StoredRow,
} from './offline/index.js';
