// Preloaded into kinesis-local (node --require): kinesis-mock tells the time through cats-effect,
// which on Node reads performance.timeOrigin + performance.now(): the wall clock when the process
// started, advanced by a monotonic clock. When the machine's wall clock is stepped after that (a
// VM's time sync), the emulator's "now" drifts from every client's: a GetShardIterator
// AT_TIMESTAMP a second old was refused as "in the future" after a step of about 1.5 s, and
// arrival timestamps were stamped behind the clients' clock. Real Kinesis keeps NTP time; here
// timeOrigin follows Date.now(), so "now" is the machine's wall clock on every read, while
// performance.now() (the emulator's timers and durations) stays monotonic.
Object.defineProperty(performance, "timeOrigin", {
  configurable: true,
  get: () => Date.now() - performance.now(),
});
