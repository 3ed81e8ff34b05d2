// The start of an executable's work. A main.ts hands its work to startMain
// (runPlugin does it for every plugin) instead of doing it on import: alone, it
// starts at once. The multi-call release (scripts/release/runtime.js) imports
// every program's main while it builds its startup snapshot and sets a
// collector, so that the imports record each program's start, and only the one
// the invocation names runs, at run time, after the snapshot is deserialized.

/** What a program tells the release about itself (its `--version` line). */
export interface MainInfo {
  /** CNI spec versions the program speaks; omitted for programs that are not plugins. */
  cniVersions?: readonly string[];
}

type Collector = (start: () => void, info: MainInfo) => void;

/** The property the release's runtime sets on globalThis while it collects the programs' starts. */
export const MAIN_COLLECTOR = Symbol.for('node-cni-plugins.main-collector');

export function startMain(start: () => void, info: MainInfo = {}): void {
  const collect = (globalThis as { [MAIN_COLLECTOR]?: Collector })[MAIN_COLLECTOR];
  if (collect) collect(start, info);
  else start();
}
