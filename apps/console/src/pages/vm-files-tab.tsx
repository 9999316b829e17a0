import { useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { UserMessage } from '../api/errors';
import { downloadTo, uploadWithProgress, type Progress } from '../api/transfer';
import type { VmView } from '@lq/api';
import { can } from '../auth/permissions';
import { useMe, useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { formatBytes } from '../lib/format';

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

export function FilesTab({ vm }: { vm: VmView }) {
  const { api } = useSession();
  const me = useMe();
  const project = vm.project_id || 'default';
  const base = `/api/vms/${encodeURIComponent(vm.id)}/files`;

  const [downPath, setDownPath] = useState('/etc/hostname');
  const [down, setDown] = useState<Progress>();
  const [downError, setDownError] = useState<unknown>();
  const [downDone, setDownDone] = useState<string>();

  const [upPath, setUpPath] = useState('/tmp/');
  const [upMode, setUpMode] = useState('');
  const [file, setFile] = useState<File>();
  const [up, setUp] = useState<Progress>();
  const [upError, setUpError] = useState<unknown>();
  const [upDone, setUpDone] = useState<string>();
  const abortUpload = useRef<() => void>(undefined);

  async function download(e: FormEvent) {
    e.preventDefault();
    const problem = pathProblem(downPath);
    setDownError(problem ? new UserMessage(problem) : undefined);
    setDownDone(undefined);
    if (problem) {
      return;
    }
    setDown({ done: 0 });
    try {
      const name = downPath.split('/').filter(Boolean).pop() ?? 'file';
      const bytes = await downloadTo(
        api,
        `${base}?path=${encodeURIComponent(downPath)}`,
        name,
        setDown,
      );
      setDownDone(`Downloaded ${downPath} (${formatBytes(bytes)}).`);
    } catch (err) {
      setDownError(err);
    } finally {
      setDown(undefined);
    }
  }

  async function upload(e: FormEvent) {
    e.preventDefault();
    const target = upPath.endsWith('/') && file ? `${upPath}${file.name}` : upPath;
    const problem = !file ? 'Choose a file to upload.' : pathProblem(target);
    setUpError(problem ? new UserMessage(problem) : undefined);
    setUpDone(undefined);
    if (problem || !file) {
      return;
    }
    if (upMode && !/^0?[0-7]{3,4}$/.test(upMode)) {
      setUpError(new UserMessage('The mode is octal permission bits, like 0644.'));
      return;
    }
    setUp({ done: 0, total: file.size });
    const q = new URLSearchParams({ path: target });
    if (upMode) {
      q.set('mode', upMode);
    }
    const transfer = uploadWithProgress(api, `${base}?${q.toString()}`, file, setUp);
    abortUpload.current = transfer.abort;
    try {
      const written = await transfer.done;
      setUpDone(`Uploaded ${file.name} to ${written.path} (${formatBytes(written.bytes)}).`);
    } catch (err) {
      if ((err as Error)?.name !== 'AbortError') {
        setUpError(err);
      }
    } finally {
      setUp(undefined);
      abortUpload.current = undefined;
    }
  }

  return (
    <div className="grid">
      {can(me, 'guest.file.read', project) && (
        <form className="card form" onSubmit={(e) => void download(e)} aria-label="Download a file">
          <h3>Download a file</h3>
          <label>
            Path in the guest
            <input
              name="download_path"
              value={downPath}
              onChange={(e) => setDownPath(e.target.value)}
            />
          </label>
          <p className="actions">
            <button type="submit" className="primary" disabled={down !== undefined}>
              Download
            </button>
          </p>
          {down && <ProgressBar progress={down} label="Downloading" />}
          {downDone && <p className="notice notice-ok">{downDone}</p>}
          {downError !== undefined && <ErrorNotice error={downError} />}
        </form>
      )}
      {can(me, 'guest.file.write', project) && (
        <form className="card form" onSubmit={(e) => void upload(e)} aria-label="Upload a file">
          <h3>Upload a file</h3>
          <label>
            File
            <input name="upload_file" type="file" onChange={(e) => setFile(e.target.files?.[0])} />
          </label>
          <label>
            Destination (a directory ending in / keeps the file’s name)
            <input name="upload_path" value={upPath} onChange={(e) => setUpPath(e.target.value)} />
          </label>
          <label>
            Mode (optional)
            <input
              name="upload_mode"
              placeholder="0644"
              value={upMode}
              onChange={(e) => setUpMode(e.target.value)}
            />
          </label>
          <p className="actions">
            <button type="submit" className="primary" disabled={up !== undefined}>
              Upload
            </button>
            {up && (
              <button type="button" onClick={() => abortUpload.current?.()}>
                Cancel
              </button>
            )}
          </p>
          {up && <ProgressBar progress={up} label="Uploading" />}
          {upDone && <p className="notice notice-ok">{upDone}</p>}
          {upError !== undefined && <ErrorNotice error={upError} />}
        </form>
      )}
    </div>
  );
}
