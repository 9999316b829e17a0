import { InterruptedError, UsageError } from './errors.js';

/**
 * Reads a secret: from a terminal without echo (raw mode; backspace and Ctrl-U edit, Ctrl-C
 * aborts), otherwise the first line of stdin (`echo "$PW" | lqctl login -u alice`).
 */
export async function readSecret(
  prompt: string,
  stdin: NodeJS.ReadStream,
  stderr: NodeJS.WriteStream,
): Promise<string> {
  if (!stdin.isTTY) {
    let text = '';
    for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
      text += chunk.toString();
      if (text.includes('\n')) {
        break;
      }
    }
    return text.split('\n')[0]!.replace(/\r$/, '');
  }
  stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
    };
    const onData = (s: string) => {
      for (const ch of s) {
        switch (ch) {
          case '\r':
          case '\n':
            finish();
            resolve(value);
            return;
          case '\u0003':
            finish();
            reject(new InterruptedError());
            return;
          case '\u0004':
            if (value === '') {
              finish();
              reject(new UsageError('no input given'));
              return;
            }
            break;
          case '\u007f':
          case '\b':
            value = [...value].slice(0, -1).join('');
            break;
          case '\u0015':
            value = '';
            break;
          default:
            value += ch;
        }
      }
    };
    stdin.on('data', onData);
  });
}
