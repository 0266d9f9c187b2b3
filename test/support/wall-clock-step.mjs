/* global process, console */
// For tests only, preloaded with NODE_OPTIONS=--import: each SIGUSR2 steps this process's wall
// clock (Date.now) by PUSHGATE_TEST_CLOCK_STEP_MS, as an NTP step or a restored VM snapshot
// would. The monotonic clock (performance.now, process.hrtime) is left alone, as a real step
// leaves it.
const step = Number(process.env.PUSHGATE_TEST_CLOCK_STEP_MS);
if (!Number.isFinite(step)) throw new Error('wall-clock-step.mjs: set PUSHGATE_TEST_CLOCK_STEP_MS');
const realNow = Date.now;
let offset = 0;
Date.now = () => realNow() + offset;
process.on('SIGUSR2', () => {
  offset += step;
  console.error(`wall clock stepped by ${step} ms (now ${new Date(Date.now()).toISOString()})`);
});
