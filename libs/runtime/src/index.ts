// @lq/runtime: what the NestJS tiers share to start and configure themselves.
export * from './env.js';
export * from './service-main.js';
export * from './nats.js';
