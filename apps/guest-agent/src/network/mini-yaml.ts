// The YAML that netplan files use, and no more: block mappings and sequences by indentation,
// flow sequences and mappings on one line, quoted and plain scalars, comments. Anything it
// cannot read is left out rather than guessed. Pure.

export type YamlValue = string | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  indent: number;
  text: string;
}

function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) {
        quote = '';
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return line;
}

function scalar(text: string): string {
  const t = text.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) {
    return t.slice(1, -1);
  }
  return t;
}

function splitFlow(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = '';
  let cur = '';
  for (const ch of body) {
    if (quote) {
      if (ch === quote) {
        quote = '';
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '[' || ch === '{') {
      depth++;
    } else if (ch === ']' || ch === '}') {
      depth--;
    } else if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur.trim() !== '') {
    parts.push(cur);
  }
  return parts;
}

function inline(text: string): YamlValue {
  const t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) {
    return splitFlow(t.slice(1, -1)).map(inline);
  }
  if (t.startsWith('{') && t.endsWith('}')) {
    const out: { [key: string]: YamlValue } = {};
    for (const part of splitFlow(t.slice(1, -1))) {
      const colon = part.indexOf(':');
      if (colon > 0) {
        out[scalar(part.slice(0, colon))] = inline(part.slice(colon + 1));
      }
    }
    return out;
  }
  return scalar(t);
}

/** `key: rest` → [key, rest]; undefined when the text is not a mapping entry. */
function entry(text: string): [string, string] | undefined {
  const m = /^("[^"]*"|'[^']*'|[^\s"'#][^:]*?)\s*:(?:\s+(.*)|$)/.exec(text);
  return m ? [scalar(m[1]!), m[2] ?? ''] : undefined;
}

function block(lines: Line[], start: number, indent: number): [YamlValue, number] {
  const first = lines[start];
  if (!first || first.indent < indent) {
    return ['', start];
  }
  if (first.text.startsWith('- ') || first.text === '-') {
    const list: YamlValue[] = [];
    let i = start;
    while (
      i < lines.length &&
      lines[i]!.indent === first.indent &&
      /^-(\s|$)/.test(lines[i]!.text)
    ) {
      const rest = lines[i]!.text.slice(1).trimStart();
      const childIndent = first.indent + 2;
      if (rest === '') {
        const [v, next] = block(lines, i + 1, childIndent);
        list.push(v);
        i = next;
      } else if (entry(rest) && !rest.startsWith('[') && !rest.startsWith('{')) {
        // A mapping that starts on the dash line: its other keys are indented past the dash.
        const sub: Line[] = [{ indent: childIndent, text: rest }];
        let j = i + 1;
        while (j < lines.length && lines[j]!.indent >= childIndent) {
          sub.push(lines[j]!);
          j++;
        }
        list.push(block(sub, 0, childIndent)[0]);
        i = j;
      } else {
        list.push(inline(rest));
        i++;
      }
    }
    return [list, i];
  }
  const map: { [key: string]: YamlValue } = {};
  let i = start;
  while (i < lines.length && lines[i]!.indent === first.indent) {
    const e = entry(lines[i]!.text);
    if (!e) {
      i++;
      continue;
    }
    const [key, rest] = e;
    if (rest.trim() === '') {
      const next = lines[i + 1];
      if (
        next &&
        (next.indent > first.indent || (next.indent === first.indent && /^-(\s|$)/.test(next.text)))
      ) {
        const [v, after] = block(lines, i + 1, next.indent);
        map[key] = v;
        i = after;
        continue;
      }
      map[key] = '';
    } else {
      map[key] = inline(rest);
    }
    i++;
  }
  return [map, i];
}

export function parseYaml(text: string): YamlValue {
  const lines: Line[] = [];
  for (const raw of text.split('\n')) {
    const body = stripComment(raw.replace(/\t/g, '  ')).trimEnd();
    if (body.trim() === '' || body.trim() === '---') {
      continue;
    }
    lines.push({ indent: body.length - body.trimStart().length, text: body.trim() });
  }
  return lines.length === 0 ? {} : block(lines, 0, lines[0]!.indent)[0];
}

export function asMap(v: YamlValue | undefined): { [key: string]: YamlValue } {
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

export function asList(v: YamlValue | undefined): YamlValue[] {
  return Array.isArray(v) ? v : v === undefined || v === '' ? [] : [v];
}

export function asString(v: YamlValue | undefined): string {
  return typeof v === 'string' ? v : '';
}
