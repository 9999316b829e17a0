/**
 * Orders versions numerically part by part (`0.10.0` after `0.9.1`); a pre-release (`~rc.1` or
 * `-rc.1`) sorts before its release. The control plane's release list uses the same order.
 */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const at = v.search(/[~-]/);
    const main = at < 0 ? v : v.slice(0, at);
    const pre = at < 0 ? undefined : v.slice(at + 1);
    return { main: main.split(/[.+]/).map((p) => (/^\d+$/.test(p) ? Number(p) : p)), pre };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.main.length, y.main.length); i++) {
    const p = x.main[i] ?? 0;
    const q = y.main[i] ?? 0;
    if (p !== q) {
      return typeof p === 'number' && typeof q === 'number'
        ? p - q
        : String(p) < String(q)
          ? -1
          : 1;
    }
  }
  if (x.pre === y.pre) {
    return 0;
  }
  if (x.pre === undefined || y.pre === undefined) {
    return x.pre === undefined ? 1 : -1;
  }
  return x.pre < y.pre ? -1 : 1;
}
