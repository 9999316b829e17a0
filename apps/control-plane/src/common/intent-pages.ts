/**
 * Walks audit intents a page at a time from where the last walk stopped: `fetch` returns the
 * intents written after `after` (oldest first, at most `limit`) and the time up to which it
 * looked; `each` handles one; `moved` is told where the next walk starts after each page, so
 * a walk the database interrupts goes on from its last whole page.
 */
export async function walkIntentPages<T extends { at: string }>(
  after: string | undefined,
  limit: number,
  fetch: (after: string | undefined, limit: number) => Promise<{ intents: T[]; upTo: string }>,
  each: (intent: T) => Promise<void>,
  moved: (after: string) => void,
): Promise<void> {
  for (;;) {
    const { intents, upTo } = await fetch(after, limit);
    for (const i of intents) {
      await each(i);
    }
    if (intents.length < limit) {
      moved(upTo);
      return;
    }
    after = intents[intents.length - 1]!.at;
    moved(after);
  }
}
