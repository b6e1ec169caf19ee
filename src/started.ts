// When our first line of JavaScript ran, in ms since the process started (performance.now() counts from Node's
// time origin, taken as the process starts). bin.ts imports this first, so it is evaluated before anything else
// is loaded: the report can then say how long Node took to reach us, and time the whole process from here.

export const STARTED_AT = performance.now()
