// Types of cgroup.mjs, for the tests that use it too (test/kernel/cni/scale.test.ts).
export interface Cgroup {
  /** The cgroup.procs files a process joins the group through. */
  readonly procs: readonly string[]
  limit(bytes: number): void
  peakBytes(): number
  resetPeak(): void
  /** Processes of the group the kernel's OOM killer ended. */
  ooms(): number
  cpuNs(): number
  remove(): void
}
export declare const createCgroup: (name: string) => Cgroup
export declare const inCgroup: (group: Cgroup, argv: readonly string[]) => string[]
