// Types for render-config-reference.mjs (plain JS: it imports the built services).

export type EnvRow = [name: string, fallback: string, meaning: string];

/** deploy/README.md's absolute path. */
export declare const README: string;
/** Table name → the built module (relative to the repository) and its export. */
export declare const TABLES: Record<string, { module: string; export: string }>;
/** One row's cells as the README shows them. */
export declare function rowCells(row: EnvRow): [string, string, string];
export declare function renderEnvTable(rows: EnvRow[]): string;
/** The table between `<!-- config:<name>:begin/end -->`, trimmed; undefined without markers. */
export declare function tableBlock(readme: string, name: string): string | undefined;
export declare function replaceTable(readme: string, name: string, table: string): string;
