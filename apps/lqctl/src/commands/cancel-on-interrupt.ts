import { onInterrupt } from '../signals.js';
import { note, type Context } from './context.js';

/**
 * Ctrl-C while following remote work (an execution, a run): the first press cancels it — at once
 * when its id is known, else as soon as started() gives it — and keeps following; the second
 * stops waiting and exits 130. dispose() removes the handler.
 */
export function cancelOnInterrupt(
  ctx: Context,
  what: 'execution' | 'run',
  cancelPath: (id: string) => string,
): { started(id: string): void; dispose(): void } {
  let id: string | undefined;
  let wanted = false;
  const cancel = (known: string) => {
    note(ctx, `cancelling ${what} ${known} (Ctrl-C again to stop waiting)`);
    ctx.client.json('POST', cancelPath(known)).catch((err: unknown) => {
      note(ctx, `cancel failed: ${(err as Error).message}`);
    });
  };
  const dispose = onInterrupt(
    () => {
      if (id === undefined) {
        wanted = true;
      } else {
        cancel(id);
      }
    },
    () => note(ctx, `stopped waiting; ${what} ${id ?? '(starting)'} is being cancelled`),
  );
  return {
    started(startedId) {
      id = startedId;
      if (wanted) {
        cancel(startedId);
      }
    },
    dispose,
  };
}
