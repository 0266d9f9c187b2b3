export * from './connection.js';
export * from './keys.js';
export * from './offline-store.js';
export * from './app-index.js';
export * from './tag-expression.js';
export * from './registry.js';
export * from './messages.js';
export * from './delivery.js';
