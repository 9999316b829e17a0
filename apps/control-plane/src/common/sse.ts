import type { Response } from 'express';

/**
 * Starts a Server-Sent Events response: 200, text/event-stream, not cached, not buffered by
 * proxies such as nginx (X-Accel-Buffering), headers sent now so the client sees the stream open.
 */
export function openEventStream(res: Response): void {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
}
