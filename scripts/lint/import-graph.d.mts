export function importGraph(root: string): Map<string, Set<string>>;
export function fileCycles(graph: Map<string, Set<string>>): string[][];
export function folderCycles(
  graph: Map<string, Set<string>>,
): Array<{ folders: [string, string]; evidence: [string, string] }>;
