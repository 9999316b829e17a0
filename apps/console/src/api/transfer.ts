import type { ApiClient } from './client';
import { errorOf } from './client';
import type { FileWrittenView } from '@lq/api';
import { ApiError, NetworkError, errorFieldsOf } from './errors';

export interface Progress {
  done: number;
  /** Unknown while the server does not say (a guest file is streamed without a length). */
  total?: number;
}

/** Hands a blob to the browser as a download. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Fetches an authenticated URL (headers cannot ride on a plain link) and saves what it
 * returns, reporting progress. A connection cut mid-way is an error, never a partial file.
 */
export async function downloadTo(
  api: ApiClient,
  url: string,
  filename: string,
  onProgress: (p: Progress) => void,
  signal?: AbortSignal,
): Promise<number> {
  const res = await api.raw(url, { signal });
  if (!res.ok || !res.body) {
    throw await errorOf(res);
  }
  const length = Number(res.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? length : undefined;
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let done = 0;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        break;
      }
      chunks.push(r.value);
      done += r.value.byteLength;
      onProgress({ done, total });
    }
  } catch (err) {
    if ((err as Error)?.name === 'AbortError') {
      throw err;
    }
    throw new NetworkError(new Error(`the download was cut after ${done} bytes`));
  }
  saveBlob(
    new Blob(chunks as BlobPart[], {
      type: res.headers.get('content-type') ?? 'application/octet-stream',
    }),
    filename,
  );
  return done;
}

/**
 * PUTs a file with XMLHttpRequest, whose upload progress events fetch does not have.
 * Resolves with the JSON answer; rejects with an ApiError or NetworkError.
 */
export function uploadWithProgress(
  api: ApiClient,
  url: string,
  file: Blob,
  onProgress: (p: Progress) => void,
): { done: Promise<FileWrittenView>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = (async () => {
    const authorization = await api.authorization();
    return new Promise<FileWrittenView>((resolve, reject) => {
      xhr.open('PUT', url);
      xhr.setRequestHeader('Authorization', authorization);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (e) =>
        onProgress({ done: e.loaded, total: e.lengthComputable ? e.total : file.size });
      xhr.onload = () => {
        let body: unknown = {};
        try {
          body = JSON.parse(xhr.responseText || '{}');
        } catch {
          // not JSON
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(body as FileWrittenView);
        } else {
          const fields = errorFieldsOf(body);
          reject(
            new ApiError(xhr.status, {
              ...fields,
              message: fields.message ?? `HTTP ${xhr.status}`,
            }),
          );
        }
      };
      xhr.onerror = () => reject(new NetworkError(new Error('the upload failed')));
      xhr.onabort = () => reject(new DOMException('upload aborted', 'AbortError'));
      xhr.send(file);
    });
  })();
  return { done, abort: () => xhr.abort() };
}
