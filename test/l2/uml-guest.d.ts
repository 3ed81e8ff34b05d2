// Types of ./uml-guest.js (plain JS: the l2 tier's runner and a benchmark script share it).

export declare const GUEST_MODULES: readonly string[];

/** The user-mode-linux kernel: NODE_CNI_UML, else /usr/bin/linux.uml or /usr/bin/linux. */
export declare function findUml(): string | undefined;

export declare function guestCommandLine(o: { out: string; root: string; node: string; main: string; memMb: number; timeoutMs: number }): string[];

export interface GuestOptions {
  kernel: string;
  /** The checkout, seen at the same path in the guest. */
  root: string;
  /** A node program to run in the guest (cwd: root); it reads `args` from $L2_OUT/args.json. */
  main: string;
  args: unknown;
  /** Default: this process's node. */
  node?: string;
  /** Default 1536. */
  memMb?: number;
  /** The guest stops the program after this long (and we stop the guest soon after). */
  timeoutMs: number;
  /** Results-directory files to hand to onFile as they appear, in name order. */
  watch?: RegExp;
  onFile?: (name: string, text: string) => void;
  /** Results-directory files to read back at the end (into GuestRun.files). */
  keep?: string[];
}

export interface GuestRun {
  /** The guest reached its init; false means user-mode-linux itself could not start. */
  booted: boolean;
  /** The program's exit code; undefined when it did not finish. */
  exitCode?: number;
  timedOut: boolean;
  /** The end of the guest console (kernel and init messages) and of the program's output. */
  consoleTail: string;
  logTail: string;
  files: Record<string, string | undefined>;
  wallMs: number;
}

export declare function runInGuest(o: GuestOptions): Promise<GuestRun>;
