// Pacing Dawn's polls of the GPU.
//
// Dawn's Node binding (npm `webgpu`) has no thread that waits for the GPU. While a mapAsync, onSubmittedWorkDone or
// pipeline compile is pending, its AsyncRunner polls instead: it calls wgpuInstanceProcessEvents from a
// setImmediate callback and schedules the next one from inside it, on every turn of the event loop until nothing is
// pending. A wait for the GPU therefore keeps the main thread at 100% and allocates a native function per turn.
// That garbage brought a 20–50 ms mark-compact every ~400 ms in a merge. On a software adapter the spinning
// thread also takes a core from the driver's own threads.
//
// `basin bench gpu-wait` times both in one process. On lavapipe (2 cores), a wait for two 1024³ matmuls took
// 331 ms and 629 CPU ms spinning, against 217 ms and 406 CPU ms paced. A wait under 2 ms took 0.39 ms either way.
//
// So the first SPIN_MS of a wait still polls on every turn, which keeps the latency of a short wait (a real GPU's
// readback of a small result). After that, polls come once a millisecond (setTimeout), which adds at most about
// 1 ms to a longer wait.
// Dawn looks the global setImmediate up each time it schedules a poll. Its callback is an anonymous native
// function, which is how it is told apart here: Node's own and Basin's callbacks are JavaScript functions, and a
// bound function's name starts with "bound". Everything else goes to the real setImmediate unchanged.
// BASIN_GPU_POLL=spin leaves Dawn's polling as it was.
/** How long a wait may poll on every event-loop turn before polls are paced (ms). */
export const SPIN_MS = 2;
/** The paced polls' interval (ms; Node's timers resolve to 1 ms). */
export const PACED_POLL_MS = 1;

const NATIVE_SOURCE = 'function () { [native code] }';

/** Dawn polls since install: run on the next turn (a wait's first SPIN_MS), paced (after it), and unpaced (spin). */
export const dawnPolls = { immediate: 0, paced: 0, spin: 0 };

/** Every Dawn poll since install, of any kind (a benchmark's count is the difference of two). */
export function dawnPollCount(): number {
  return dawnPolls.immediate + dawnPolls.paced + dawnPolls.spin;
}

let installed = false;
let pacing = true;

function isDawnPoll(cb: unknown): cb is (...args: unknown[]) => void {
  return typeof cb === 'function' && cb.name === '' && Function.prototype.toString.call(cb) === NATIVE_SOURCE;
}

/** Turns the pacing on or off for the polls scheduled from now on (`basin bench gpu-wait` times both). */
export function setDawnPollPacing(on: boolean): void {
  pacing = on;
}

/** Whether Dawn's polls are paced now. */
export function dawnPollPacing(): boolean {
  return installed && pacing;
}

/**
 * Installs the pacing (once per process; before Dawn's first wait, so device.ts calls it as it loads Dawn).
 * BASIN_GPU_POLL=spin installs it turned off. Returns whether polls are paced.
 */
export function paceDawnPolling(mode: string = process.env.BASIN_GPU_POLL ?? 'paced'): boolean {
  if (installed) return pacing;
  installed = true;
  pacing = mode !== 'spin';
  const realImmediate = globalThis.setImmediate;
  /** When the current wait's polls began, and whether a poll's callback is running (a reschedule continues it). */
  let waitStart = 0;
  let inPoll = false;
  const setImmediatePaced = function setImmediate(cb: unknown, ...args: unknown[]) {
    if (!isDawnPoll(cb)) return (realImmediate as (cb: unknown, ...a: unknown[]) => NodeJS.Immediate)(cb, ...args);
    if (!pacing) {
      dawnPolls.spin++;
      return realImmediate(cb, ...args);
    }
    const now = performance.now();
    if (!inPoll) waitStart = now; // scheduled from outside a poll: a new wait begins
    const poll = () => {
      inPoll = true;
      try {
        cb(...args);
      } finally {
        inPoll = false;
      }
    };
    if (now - waitStart < SPIN_MS) {
      dawnPolls.immediate++;
      return realImmediate(poll);
    }
    dawnPolls.paced++;
    // Dawn ignores the handle; a Timeout is returned where an Immediate would be.
    return setTimeout(poll, PACED_POLL_MS) as unknown as NodeJS.Immediate;
  };
  // Keep what the real function carries (util.promisify's custom form).
  for (const key of Reflect.ownKeys(realImmediate)) {
    if (key === 'name' || key === 'length' || key === 'prototype') continue;
    const d = Object.getOwnPropertyDescriptor(realImmediate, key);
    if (d) Object.defineProperty(setImmediatePaced, key, d);
  }
  globalThis.setImmediate = setImmediatePaced as unknown as typeof globalThis.setImmediate;
  return pacing;
}
