#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

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
function exitSoon() {
  setImmediate(() => process.exit());
}
main(process.argv.slice(2)).then(
  (code) => { settled = true; process.exitCode = code; exitSoon(); },
  (err) => { settled = true; console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 70; exitSoon(); },
);
