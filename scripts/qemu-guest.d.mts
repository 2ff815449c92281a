// Types of scripts/qemu-guest.mjs (used by the QEMU tests and bench).
export declare const CACHE_DIR: string;
export declare const KERNEL_PACKAGE: string;
export declare function findKernel(): string | null;
export declare function findGuestTools(): { qemu: string; busybox: string; kernel: string } | { missing: string };
export declare function fetchKernel(): string;
export declare function cpioNewc(entries: { name: string; mode: number; data?: Uint8Array | string }[]): Buffer;
export interface GuestInitOptions { dataMb?: number; writeMb?: number; tickMs?: number }
export declare function initScript(options?: GuestInitOptions): string;
export declare function buildInitramfs(busyboxPath: string, options?: GuestInitOptions): Buffer;
export declare function qemuArgs(o: { kernel: string; initrd: string; ramPath: string; ramMiB: number; qmpPath: string; incoming?: boolean }): string[];
export interface GuestProcess {
  readonly proc: import('node:child_process').ChildProcess;
  readonly qmpPath: string;
  readonly ramPath: string;
  readonly lines: string[];
  ticks(): { n: number; sum: string }[];
  waitLine(re: RegExp, timeoutMs: number, from?: number): Promise<string>;
  kill(): void;
}
export declare function startGuest(tools: { qemu: string; kernel: string }, o: { dir: string; name: string; initrd: string; ramMiB: number; incoming?: boolean }): Promise<GuestProcess>;
