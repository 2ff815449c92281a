#!/usr/bin/env node
import { spawn } from 'node:child_process';

// Huge pages for guest memory (Linux, glibc >= 2.35). A fresh target spends most of its time in
// first-touch page faults: with 4 KiB pages about 0.25-0.4 GB/s on the 2-core VMs we test on,
// with transparent huge pages 1-5 GB/s (docs/BENCHMARKS.md, "Throughput"). Node cannot madvise
// its buffers, but glibc's malloc does it for large allocations (they back SharedArrayBuffers
// and Node buffers) when the tunable glibc.malloc.hugetlb=1 is set, and glibc reads tunables only
// when a process starts. So the CLI starts itself once more with it, unless PAGEWIRE_HUGEPAGES=off
// or GLIBC_TUNABLES already names it. The THP mode "madvise" (the common default) is enough;
// where glibc is older or absent the tunable does nothing.
const tunables = process.env.GLIBC_TUNABLES ?? '';
if (process.platform === 'linux' && process.env.PAGEWIRE_HUGEPAGES !== 'off' && !tunables.includes('glibc.malloc.hugetlb')) {
  relaunch();
} else {
  await run();
}

function relaunch() {
  // this process only waits for the other one (preloaded tools, e.g. the tests' peak-RSS report, can tell)
  process.env.PAGEWIRE_RELAUNCHER = '1';
  const env = { ...process.env, PAGEWIRE_RELAUNCHER: '', PAGEWIRE_RELAUNCHED: '1', GLIBC_TUNABLES: tunables ? `${tunables}:glibc.malloc.hugetlb=1` : 'glibc.malloc.hugetlb=1' };
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env });
  const forward = (sig) => { if (child.exitCode === null && child.signalCode === null) child.kill(sig); };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, forward);
  child.on('error', (err) => {
    // could not start a second process: run here, with 4 KiB pages
    console.error(`pagewire: could not restart with huge pages (${err.message}); continuing without them`);
    process.env.PAGEWIRE_HUGEPAGES = 'off';
    void run();
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // end the way the command ended
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
}

async function run() {
  // started by relaunch(): end with the process that started us (a killed parent must not leave
  // the command running on its own)
  if (process.send && process.env.PAGEWIRE_RELAUNCHED === '1') {
    process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
    process.channel?.unref();
  }
  const { main } = await import('../dist/cli/main.js');
  let settled = false;
  // A command whose work stopped without settling (a promise nothing will resolve, and nothing
  // left to run) must not end as a silent success.
  process.on('beforeExit', () => {
    if (settled) return;
    settled = true;
    console.error(`pagewire ${process.argv[2] ?? ''}: internal error: the command stopped before it finished (please report this)`);
    process.exitCode = 1;
  });
  // Once main() settled the command is done: exit at the next turn of the event loop rather than
  // let the event loop empty. Found: about 1 run in 20-30 of a 4 MiB loopback `migrate --secret`
  // printed its report and then spun at 100 % CPU. gdb on the spinning process shows it inside
  // Node's own teardown (node::FreeEnvironment -> Environment::RunCleanup -> CleanupHandles ->
  // uv_run, every other thread idle): after our code had finished, in a loop that neither
  // timers nor a debugger can interrupt. Node's issue tracker has a report of the same
  // intermittent shutdown loop on 16-20 (nodejs/node#47748). process.exit() does not go through
  // that cleanup. stdout and stderr are written synchronously to files, pipes and terminals on
  // Linux and macOS, so the report is out.
  const exitSoon = () => setImmediate(() => process.exit());
  main(process.argv.slice(2)).then(
    (code) => { settled = true; process.exitCode = code; exitSoon(); },
    (err) => { settled = true; console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 70; exitSoon(); },
  );
}
