#!/usr/bin/env node
// A tiny QEMU guest for pagewire's QEMU test and benchmark: Debian's kernel (unpacked from its
// .deb) and a busybox initramfs whose init prints a counter and a checksum on the serial console.
//
//   node scripts/qemu-guest.mjs fetch     download and unpack the kernel into .cache/qemu (apt)
//   node scripts/qemu-guest.mjs check     print what is found (qemu, busybox, kernel) and exit 0/1
//   node scripts/qemu-guest.mjs initrd FILE [DATA_MB] [WRITE_MB]     write the initramfs
//   node scripts/qemu-guest.mjs args INITRD RAMFILE QMPSOCK [incoming] [RAM_MIB]   print QEMU's arguments
//
// The initramfs is a cpio "newc" archive (the format the kernel unpacks: a 110-byte ASCII header
// of 13 eight-digit hex fields after the magic 070701, the name, padding to 4 bytes, the data,
// padding to 4 bytes; the archive ends with an entry named TRAILER!!!), written here so no cpio
// binary is needed.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the kernel package is downloaded and unpacked (ignored by git). */
export const CACHE_DIR = join(ROOT, '.cache', 'qemu');
/** The kernel package: the cloud flavour boots fastest (fewest drivers) and has 8250 serial built in. */
export const KERNEL_PACKAGE = 'linux-image-cloud-amd64';

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** The unpacked kernel image under CACHE_DIR, or null. */
export function findKernel() {
  const boot = join(CACHE_DIR, 'x', 'boot');
  if (!existsSync(boot)) return null;
  const k = readdirSync(boot).filter((f) => f.startsWith('vmlinuz-')).sort().pop();
  return k ? join(boot, k) : null;
}

/**
 * What the QEMU guest needs on this machine.
 * @returns {{ qemu: string, busybox: string, kernel: string } | { missing: string }}
 */
export function findGuestTools() {
  const qemu = which('qemu-system-x86_64');
  if (!qemu) return { missing: 'qemu-system-x86_64 (apt-get install qemu-system-x86)' };
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)) ?? which('busybox');
  if (!busybox) return { missing: 'busybox (apt-get install busybox-static)' };
  const kernel = findKernel();
  if (!kernel) return { missing: `a kernel in ${CACHE_DIR} (node scripts/qemu-guest.mjs fetch)` };
  return { qemu, busybox, kernel };
}

/** Download the kernel package with apt and unpack it into CACHE_DIR (idempotent). */
export function fetchKernel() {
  if (findKernel()) return findKernel();
  mkdirSync(CACHE_DIR, { recursive: true });
  // the meta package depends on the real image package: download that one
  const deps = execFileSync('apt-cache', ['depends', KERNEL_PACKAGE], { encoding: 'utf8' });
  const m = /Depends:\s*(linux-image-\S+)/.exec(deps);
  if (!m) throw new Error(`apt-cache depends ${KERNEL_PACKAGE} names no image package:\n${deps}`);
  execFileSync('apt-get', ['download', m[1]], { cwd: CACHE_DIR, stdio: 'inherit' });
  const deb = readdirSync(CACHE_DIR).find((f) => f.startsWith(m[1]) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${m[1]} left no .deb in ${CACHE_DIR}`);
  execFileSync('dpkg-deb', ['-x', join(CACHE_DIR, deb), join(CACHE_DIR, 'x')], { stdio: 'inherit' });
  const k = findKernel();
  if (!k) throw new Error(`no vmlinuz in ${deb}`);
  return k;
}

/**
 * A cpio newc archive of the given entries.
 * @param {{ name: string, mode: number, data?: Uint8Array | string }[]} entries mode includes the
 *   file type bits (0o100000 file, 0o040000 directory, 0o120000 symlink: data = target)
 * @returns {Buffer}
 */
export function cpioNewc(entries) {
  const parts = [];
  let ino = 1;
  const pad4 = (n) => (4 - (n % 4)) % 4;
  const push = (name, mode, data) => {
    const body = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data ?? new Uint8Array(0));
    const nameBytes = Buffer.from(name + '\0');
    const fields = [ino++, mode, 0, 0, 1, 0, body.length, 0, 0, 0, 0, nameBytes.length, 0];
    const head = '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
    parts.push(Buffer.from(head, 'ascii'), nameBytes, Buffer.alloc(pad4(110 + nameBytes.length)), body, Buffer.alloc(pad4(body.length)));
  };
  for (const e of entries) push(e.name, e.mode, e.data);
  push('TRAILER!!!', 0, undefined);
  return Buffer.concat(parts);
}

/**
 * The guest's init: fills DATA_MB of tmpfs with pseudo-random data, then once per tick prints
 * `PWTICK <counter> <md5 of the data>` on the serial console. With WRITE_MB > 0 it also rewrites
 * that many MiB of a scratch file each tick (a writing workload for the benchmark).
 */
export function initScript({ dataMb = 4, writeMb = 0, tickMs = 200 } = {}) {
  const sleep = (tickMs / 1000).toFixed(3);
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o size=90% tmpfs /mnt
dd if=/dev/urandom of=/mnt/data bs=1048576 count=${dataMb} 2>/dev/null
echo PWREADY
i=0
while true; do
  i=$((i+1))
  ${writeMb > 0 ? `dd if=/dev/urandom of=/mnt/scratch bs=1048576 count=${writeMb} conv=notrunc 2>/dev/null` : ':'}
  s=$(md5sum /mnt/data)
  echo "PWTICK $i \${s%% *}"
  sleep ${sleep}
done
`;
}

/** The initramfs bytes: busybox as /bin/busybox plus the init script. */
export function buildInitramfs(busyboxPath, options = {}) {
  const dir = 0o040755;
  return cpioNewc([
    { name: 'bin', mode: dir }, { name: 'proc', mode: dir }, { name: 'sys', mode: dir }, { name: 'dev', mode: dir },
    { name: 'mnt', mode: dir }, { name: 'tmp', mode: dir },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync(busyboxPath) },
    { name: 'bin/sh', mode: 0o120777, data: 'busybox' },
    { name: 'init', mode: 0o100755, data: initScript(options) },
  ]);
}

/**
 * QEMU arguments for a guest whose RAM is the shared file `ramPath` (x-ignore-shared needs a
 * shared, named memory-backend-file), with a QMP socket and the serial console on stdio.
 * @param {{ kernel: string, initrd: string, ramPath: string, ramMiB: number, qmpPath: string, incoming?: boolean }} o
 */
export function qemuArgs(o) {
  return [
    '-machine', 'pc,memory-backend=ram0', '-accel', 'tcg', '-cpu', 'qemu64', '-smp', '1',
    '-object', `memory-backend-file,id=ram0,size=${o.ramMiB}M,mem-path=${o.ramPath},share=on`,
    '-m', `${o.ramMiB}M`,
    '-kernel', o.kernel, '-initrd', o.initrd,
    '-append', 'console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check rdinit=/init',
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-nodefaults', '-no-reboot',
    '-qmp', `unix:${o.qmpPath},server=on,wait=off`,
    ...(o.incoming ? ['-incoming', 'defer'] : []),
  ];
}

/**
 * Start QEMU with the guest (or, with `incoming`, waiting for one), its RAM in `dir` (a tmpfs
 * such as /dev/shm), a QMP socket there too, and its serial console collected line by line.
 * @param {{ qemu: string, kernel: string }} tools
 * @param {{ dir: string, name: string, initrd: string, ramMiB: number, incoming?: boolean }} o
 */
export async function startGuest(tools, o) {
  const qmpPath = join(o.dir, `${o.name}.qmp`);
  const ramPath = join(o.dir, `${o.name}.ram`);
  const proc = spawn(tools.qemu, qemuArgs({ kernel: tools.kernel, initrd: o.initrd, ramPath, ramMiB: o.ramMiB, qmpPath, incoming: o.incoming }), { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const waiters = new Set();
  let partial = '';
  let stderr = '';
  proc.stdout.on('data', (d) => {
    const parts = (partial + d.toString()).split(/\r?\n/);
    partial = parts.pop();
    lines.push(...parts);
    for (const w of waiters) w();
  });
  proc.stderr.on('data', (d) => { stderr += d.toString(); });
  proc.on('exit', () => { for (const w of waiters) w(); });
  for (let i = 0; i < 400 && !existsSync(qmpPath) && proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(qmpPath)) {
    proc.kill('SIGKILL');
    throw new Error(`QEMU did not start: ${stderr}`);
  }
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    proc, qmpPath, ramPath, lines,
    /** `PWTICK counter checksum` lines so far. */
    ticks: () => lines.map((l) => /PWTICK (\d+) ([0-9a-f]{32})/.exec(l)).filter((m) => m !== null).map((m) => ({ n: Number(m[1]), sum: m[2] })),
    /** Wait for a console line matching `re` (after `from` lines). */
    waitLine(re, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        const done = () => { clearTimeout(timer); waiters.delete(check); };
        const check = () => {
          const hit = lines.slice(from).find((l) => re.test(l));
          if (hit !== undefined) { done(); resolve(hit); } else if (exited()) { done(); reject(new Error(`QEMU exited before ${re}: ${stderr} ${lines.slice(-5).join(' | ')}`)); }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`no ${re} within ${timeoutMs} ms; last lines: ${lines.slice(-5).join(' | ')} ${stderr}`)); }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    kill: () => { proc.kill('SIGKILL'); },
    /** What QEMU wrote on stderr so far. */
    stderr: () => stderr,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cmd = process.argv[2];
  if (cmd === 'fetch') {
    console.log(fetchKernel());
  } else if (cmd === 'check') {
    const t = findGuestTools();
    console.log(JSON.stringify(t));
    process.exit('missing' in t ? 1 : 0);
  } else if (cmd === 'initrd' && process.argv[3]) {
    const t = findGuestTools();
    if ('missing' in t) throw new Error(`missing ${t.missing}`);
    writeFileSync(process.argv[3], buildInitramfs(t.busybox, { dataMb: Number(process.argv[4] ?? 4), writeMb: Number(process.argv[5] ?? 0) }));
  } else if (cmd === 'args' && process.argv[5]) {
    const kernel = findKernel();
    if (!kernel) throw new Error('no kernel: node scripts/qemu-guest.mjs fetch');
    const [initrd, ramPath, qmpPath, incoming, ramMiB] = process.argv.slice(3);
    const args = qemuArgs({ kernel, initrd, ramPath, qmpPath, incoming: incoming === 'incoming', ramMiB: Number(ramMiB ?? 256) });
    // one argument per line would lose nothing; print them shell-quoted on one line
    console.log(args.map((x) => (/^[\w@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`)).join(' '));
  } else {
    console.error('usage: node scripts/qemu-guest.mjs fetch|check|initrd FILE|args INITRD RAMFILE QMPSOCK [incoming] [RAM_MIB]');
    process.exit(2);
  }
}
