// The INI dialect of NetworkManager keyfiles and systemd .network units: [Section] headers,
// key=value lines (a key may repeat), # and ; comments. Pure.

export interface IniSection {
  name: string;
  entries: [string, string][];
}

export function parseIni(text: string): IniSection[] {
  const sections: IniSection[] = [];
  let current: IniSection | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) {
      continue;
    }
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = { name: header[1]!.trim(), entries: [] };
      sections.push(current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0 && current) {
      current.entries.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
    }
  }
  return sections;
}

/** Every value of `key` in the sections named `section`, in order. */
export function iniValues(sections: IniSection[], section: string, key: string): string[] {
  return sections
    .filter((s) => s.name === section)
    .flatMap((s) => s.entries.filter(([k]) => k === key).map(([, v]) => v));
}

/** The last value of `key` in `section`, or undefined. */
export function iniValue(sections: IniSection[], section: string, key: string): string | undefined {
  return iniValues(sections, section, key).at(-1);
}
