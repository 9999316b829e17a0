// Types for launcher.mjs (plain JS: build-packages.mjs and the peer benchmark run it unbuilt).

/** The launcher script for `name`, which runs ../lib/limiquantix-agent/<bundle> beside it. */
export declare function renderLauncher(name: string, bundle: string, what: string): string;
/** Lays out <root>/bin/<name> and <root>/lib/limiquantix-agent/<bundle>; returns bin/<name>. */
export declare function installLauncher(
  root: string,
  name: string,
  bundlePath: string,
  what: string,
): string;
