// Accepting a push: the home shared by the push API and the campaign dispatcher (below both).
export * from './accept.js';
export * from './observer.js';
export * from './router.js';
export * from './target.js';
