/**
 * Ctrl-C for long-running commands: the first press calls `first` (cancel the remote work and
 * keep following it), the second calls `second` and exits 130 without waiting any longer.
 */
export function onInterrupt(first: () => void, second: () => void): () => void {
  let presses = 0;
  const handler = () => {
    presses++;
    if (presses === 1) {
      first();
    } else {
      second();
      process.exit(130);
    }
  };
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGINT', handler);
  };
}
