import { useCallback, useEffect, useRef, useState } from 'react';
import type { DragEvent, FormEvent } from 'react';
import type {
  DirectoryCreatedView,
  FileDeletedView,
  FileEntryView,
  FileListView,
  FileRenamedView,
  VmView,
} from '@lq/api';
import { UserMessage } from '../api/errors';
import { downloadTo, uploadWithProgress, type Progress } from '../api/transfer';
import { can } from '../auth/permissions';
import { useMe, useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { ConfirmDialog, Modal } from '../components/modal';
import { formatBytes, formatTime } from '../lib/format';

/** Entries asked for per page; "Show more" asks for the next. */
const PAGE = 200;

/** Guest paths must be absolute; the agent checks the rest (normalised, allowed roots). */
export function pathProblem(path: string): string | undefined {
  if (!path.trim()) {
    return 'Enter a path in the guest.';
  }
  if (!path.startsWith('/')) {
    return 'Guest paths are absolute: start with /.';
  }
  return undefined;
}

/** `dir` joined with `name` ("/" + "etc" is "/etc"). */
export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** The directory above `path` ("/" stays "/"). */
export function parentOf(path: string): string {
  const i = path.replace(/\/+$/, '').lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** A path as the agent wants it: absolute, no trailing or doubled "/", no "." segments. */
export function normalisePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return `/${parts.join('/')}`;
}

/** What is wrong with a new file or folder name, if anything. */
export function nameProblem(name: string): string | undefined {
  if (!name || name === '.' || name === '..') {
    return 'Enter a name.';
  }
  if (name.includes('/')) {
    return 'A name cannot contain “/”.';
  }
  return undefined;
}

export function ProgressBar({ progress, label }: { progress: Progress; label: string }) {
  const pct = progress.total ? Math.min(100, (progress.done / progress.total) * 100) : undefined;
  return (
    <div className="transfer" role="status">
      <progress max={100} value={pct} aria-label={label} />
      <span className="small">
        {label}: {formatBytes(progress.done)}
        {progress.total ? ` of ${formatBytes(progress.total)} (${Math.floor(pct ?? 0)} %)` : ''}
      </span>
    </div>
  );
}

interface UploadItem {
  id: number;
  file: File;
  state: 'queued' | 'sending' | 'done' | 'failed';
  progress: Progress;
  error?: unknown;
}

const TYPE_LABELS: Record<FileEntryView['type'], string> = {
  file: 'file',
  directory: 'folder',
  symlink: 'link',
  fifo: 'fifo',
  socket: 'socket',
  char_device: 'char device',
  block_device: 'block device',
  other: 'other',
};

type Dialog =
  | { kind: 'mkdir' }
  | { kind: 'rename'; entry: FileEntryView }
  | { kind: 'delete'; entry: FileEntryView };

export function FilesTab({ vm }: { vm: VmView }) {
  const { api } = useSession();
  const me = useMe();
  const project = vm.project_id || 'default';
  const canRead = can(me, 'guest.file.read', project);
  const canWrite = can(me, 'guest.file.write', project);
  const base = `/api/vms/${encodeURIComponent(vm.id)}/files`;

  const [dir, setDir] = useState('/');
  const [typed, setTyped] = useState('/');
  const [listing, setListing] = useState<FileListView>();
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState<string>();
  const [dialog, setDialog] = useState<Dialog>();
  const [down, setDown] = useState<{ name: string; progress: Progress }>();
  const [uploads, setUploads] = useState<UploadItem[]>([]);
  const [dragging, setDragging] = useState(false);
  const uploadId = useRef(0);
  const running = useRef(false);

  // Only the latest listing request may change the page: an earlier one answering late (the
  // first directory's, say) must not replace what the user has gone to since.
  const latestLoad = useRef(0);
  const load = useCallback(
    async (path: string, cursor?: string) => {
      const mine = ++latestLoad.current;
      setLoading(true);
      setError(undefined);
      try {
        const q = new URLSearchParams({ path, limit: String(PAGE) });
        if (cursor) {
          q.set('cursor', cursor);
        }
        const page = await api.json<FileListView>(`${base}/list?${q.toString()}`);
        if (mine !== latestLoad.current) {
          return;
        }
        setListing((prev) =>
          cursor && prev?.path === path
            ? { ...page, entries: [...prev.entries, ...page.entries] }
            : page,
        );
      } catch (err) {
        if (mine !== latestLoad.current) {
          return;
        }
        if (!cursor) {
          setListing(undefined);
        }
        setError(err);
      } finally {
        if (mine === latestLoad.current) {
          setLoading(false);
        }
      }
    },
    [api, base],
  );

  useEffect(() => {
    if (canRead) {
      void load(dir);
    }
  }, [canRead, dir, load]);

  function go(path: string) {
    const problem = pathProblem(path);
    if (problem) {
      setError(new UserMessage(problem));
      return;
    }
    const next = normalisePath(path);
    setTyped(next);
    setNotice(undefined);
    if (next === dir) {
      void load(next);
    } else {
      setDir(next);
    }
  }

  async function download(entry: FileEntryView) {
    const path = joinPath(dir, entry.name);
    setError(undefined);
    setDown({ name: entry.name, progress: { done: 0, total: entry.size } });
    try {
      const bytes = await downloadTo(
        api,
        `${base}?path=${encodeURIComponent(path)}`,
        entry.name,
        (p) =>
          setDown({ name: entry.name, progress: { done: p.done, total: p.total ?? entry.size } }),
      );
      setNotice(`Downloaded ${path} (${formatBytes(bytes)}).`);
    } catch (err) {
      setError(err);
    } finally {
      setDown(undefined);
    }
  }

  // Uploads go one after another, each into the directory shown when it was dropped; the queue
  // lives in a ref (the state only shows it), so a drop while others run just joins it.
  const pending = useRef<Array<{ id: number; file: File; target: string }>>([]);
  const shown = useRef(dir);
  shown.current = dir;

  const pump = useCallback(async () => {
    if (running.current) {
      return;
    }
    running.current = true;
    try {
      for (let item = pending.current.shift(); item; item = pending.current.shift()) {
        const { id, file, target } = item;
        const update = (patch: Partial<UploadItem>) =>
          setUploads((items) => items.map((i) => (i.id === id ? { ...i, ...patch } : i)));
        update({ state: 'sending' });
        const transfer = uploadWithProgress(
          api,
          `${base}?${new URLSearchParams({ path: joinPath(target, file.name) }).toString()}`,
          file,
          (progress) => update({ progress }),
        );
        try {
          await transfer.done;
          update({ state: 'done', progress: { done: file.size, total: file.size } });
        } catch (err) {
          update({ state: 'failed', error: err });
        }
        if (target === shown.current && pending.current.length === 0) {
          await load(target);
        }
      }
    } finally {
      running.current = false;
    }
  }, [api, base, load]);

  function queue(files: FileList | File[] | null) {
    const list = Array.from(files ?? []);
    if (list.length === 0) {
      return;
    }
    const bad = list.find((f) => nameProblem(f.name));
    if (bad) {
      setError(new UserMessage(`Cannot upload “${bad.name}”: ${nameProblem(bad.name)}`));
      return;
    }
    const items = list.map((file) => ({
      id: ++uploadId.current,
      file,
      state: 'queued' as const,
      progress: { done: 0, total: file.size },
    }));
    pending.current.push(...items.map(({ id, file }) => ({ id, file, target: dir })));
    setUploads((old) => [
      ...old.filter((i) => i.state === 'queued' || i.state === 'sending'),
      ...items,
    ]);
    void pump();
  }

  function onDrop(e: DragEvent) {
    e.preventDefault();
    setDragging(false);
    if (canWrite) {
      queue(e.dataTransfer.files);
    }
  }

  async function mutate<T>(work: () => Promise<T>, message: (r: T) => string) {
    setError(undefined);
    try {
      const r = await work();
      setDialog(undefined);
      setNotice(message(r));
      await load(dir);
    } catch (err) {
      setError(err);
      throw err;
    }
  }

  const entries = listing?.path === dir ? listing.entries : [];
  const crumbs = dir.split('/').filter(Boolean);

  return (
    <div
      className={`card files${dragging ? ' dragging' : ''}`}
      onDragOver={(e) => {
        if (canWrite) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <form
        className="toolbar"
        aria-label="Go to a directory"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          go(typed);
        }}
      >
        <button type="button" onClick={() => go(parentOf(dir))} disabled={dir === '/'}>
          Up
        </button>
        <input
          name="directory"
          aria-label="Directory"
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
        />
        <button type="submit">Go</button>
        <button type="button" onClick={() => void load(dir)} disabled={loading}>
          Refresh
        </button>
        <span className="spacer" />
        {canWrite && (
          <>
            <button type="button" onClick={() => setDialog({ kind: 'mkdir' })}>
              New folder
            </button>
            <label className="button">
              Upload files
              <input
                type="file"
                name="upload_files"
                multiple
                hidden
                onChange={(e) => {
                  queue(e.target.files);
                  e.target.value = '';
                }}
              />
            </label>
          </>
        )}
      </form>
      <nav className="crumbs" aria-label="Path">
        <button type="button" className="link" onClick={() => go('/')}>
          /
        </button>
        {crumbs.map((c, i) => (
          <span key={i}>
            <button
              type="button"
              className="link"
              onClick={() => go(`/${crumbs.slice(0, i + 1).join('/')}`)}
            >
              {c}
            </button>
            {i < crumbs.length - 1 ? ' / ' : ''}
          </span>
        ))}
      </nav>
      {notice && (
        <p className="notice notice-ok" role="status">
          {notice}
        </p>
      )}
      {error !== undefined && <ErrorNotice error={error} />}
      {down && <ProgressBar progress={down.progress} label={`Downloading ${down.name}`} />}
      {uploads.length > 0 && (
        <ul className="uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li key={u.id} data-state={u.state}>
              <ProgressBar
                progress={u.progress}
                label={`${u.state === 'done' ? 'Uploaded' : u.state === 'failed' ? 'Failed' : u.state === 'queued' ? 'Waiting' : 'Uploading'} ${u.file.name}`}
              />
              {u.error !== undefined && <ErrorNotice error={u.error} />}
            </li>
          ))}
        </ul>
      )}
      {canWrite && (
        <p className="dropzone muted small">
          Drop files here to upload them to {dir} (each replaces a file of the same name).
        </p>
      )}
      {canRead ? (
        <table className="table compact files-table" aria-label="Directory entries">
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Size</th>
              <th>Mode</th>
              <th>Owner</th>
              <th>Modified</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.name} data-name={e.name}>
                <td>
                  {e.type === 'directory' ? (
                    <button
                      type="button"
                      className="link"
                      onClick={() => go(joinPath(dir, e.name))}
                    >
                      {e.name}/
                    </button>
                  ) : (
                    e.name
                  )}
                  {e.link_target && <span className="muted"> → {e.link_target}</span>}
                </td>
                <td>{TYPE_LABELS[e.type]}</td>
                <td>{e.type === 'directory' ? '—' : formatBytes(e.size)}</td>
                <td>
                  <code>{e.mode}</code>
                </td>
                <td>
                  {e.owner ?? e.uid}:{e.group ?? e.gid}
                </td>
                <td>{formatTime(e.modified_at)}</td>
                <td className="row-actions">
                  {e.type === 'file' && (
                    <button
                      type="button"
                      onClick={() => void download(e)}
                      disabled={down !== undefined}
                      aria-label={`Download ${e.name}`}
                    >
                      Download
                    </button>
                  )}
                  {canWrite && (
                    <>
                      <button
                        type="button"
                        onClick={() => setDialog({ kind: 'rename', entry: e })}
                        aria-label={`Rename ${e.name}`}
                      >
                        Rename
                      </button>
                      <button
                        type="button"
                        className="danger"
                        onClick={() => setDialog({ kind: 'delete', entry: e })}
                        aria-label={`Delete ${e.name}`}
                      >
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="muted">You may upload here but not list directories (guest.file.read).</p>
      )}
      {listing && listing.path === dir && (
        <p className="muted small" data-testid="listing-count">
          {entries.length} of {listing.total_entries} entries
          {listing.resolved_path !== dir ? ` (${listing.resolved_path})` : ''}
          {listing.next_cursor && (
            <>
              {' '}
              <button
                type="button"
                onClick={() => void load(dir, listing.next_cursor ?? undefined)}
                disabled={loading}
              >
                Show more
              </button>
            </>
          )}
        </p>
      )}
      {loading && (
        <p className="muted" role="status">
          <span className="spinner" aria-hidden="true" /> Reading {dir}…
        </p>
      )}
      {dialog?.kind === 'mkdir' && (
        <NameDialog
          title={`New folder in ${dir}`}
          label="Folder name"
          initial=""
          submitLabel="Create"
          onCancel={() => setDialog(undefined)}
          onSubmit={(name) =>
            mutate(
              () => api.post<DirectoryCreatedView>(`${base}/mkdir`, { path: joinPath(dir, name) }),
              (r) => `Created ${r.path}.`,
            )
          }
        />
      )}
      {dialog?.kind === 'rename' && (
        <NameDialog
          title={`Rename ${dialog.entry.name}`}
          label="New name"
          initial={dialog.entry.name}
          submitLabel="Rename"
          onCancel={() => setDialog(undefined)}
          onSubmit={(name) =>
            mutate(
              () =>
                api.post<FileRenamedView>(`${base}/rename`, {
                  from: joinPath(dir, dialog.entry.name),
                  to: joinPath(dir, name),
                }),
              (r) => `Renamed ${r.from} to ${r.to}.`,
            )
          }
        />
      )}
      {dialog?.kind === 'delete' && (
        <ConfirmDialog
          title={`Delete ${dialog.entry.name}?`}
          message={
            dialog.entry.type === 'directory'
              ? `The folder ${joinPath(dir, dialog.entry.name)} and everything in it are deleted from ${vm.name || vm.id}. This cannot be undone.`
              : `${joinPath(dir, dialog.entry.name)} is deleted from ${vm.name || vm.id}${dialog.entry.type === 'symlink' ? ' (the link only, not what it points to)' : ''}. This cannot be undone.`
          }
          confirmLabel="Delete"
          onCancel={() => setDialog(undefined)}
          onConfirm={() => {
            const entry = dialog.entry;
            const q = new URLSearchParams({ path: joinPath(dir, entry.name) });
            if (entry.type === 'directory') {
              q.set('recursive', 'true');
            }
            mutate(
              () => api.json<FileDeletedView>(`${base}?${q.toString()}`, { method: 'DELETE' }),
              (r) => `Deleted ${r.path}${r.removed > 1 ? ` (${r.removed} entries)` : ''}.`,
            ).catch(() => setDialog(undefined));
          }}
        />
      )}
    </div>
  );
}

/** Asks for a name (a new folder, a rename); errors stay in the dialog. */
function NameDialog({
  title,
  label,
  initial,
  submitLabel,
  onSubmit,
  onCancel,
}: {
  title: string;
  label: string;
  initial: string;
  submitLabel: string;
  onSubmit: (name: string) => Promise<void>;
  onCancel: () => void;
}) {
  const [name, setName] = useState(initial);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  async function submit(e: FormEvent) {
    e.preventDefault();
    const problem = nameProblem(name.trim());
    if (problem) {
      setError(new UserMessage(problem));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await onSubmit(name.trim());
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }
  return (
    <Modal title={title} onClose={onCancel}>
      <form className="form" aria-label={title} onSubmit={(e) => void submit(e)}>
        <label>
          {label}
          <input name="name" value={name} autoFocus onChange={(e) => setName(e.target.value)} />
        </label>
        <p className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {submitLabel}
          </button>
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        </p>
        {error !== undefined && <ErrorNotice error={error} />}
      </form>
    </Modal>
  );
}
