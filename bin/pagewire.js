#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

/** Once main() settled, the process ends within this, even if a handle it left behind is still open. */
const EXIT_GRACE_MS = 5000;

let settled = false;
// A command whose work stopped without settling (a promise nothing will resolve, and nothing
// left to run) must not end as a silent success.
process.on('beforeExit', () => {
  if (settled) return;
  settled = true;
  console.error(`pagewire ${process.argv[2] ?? ''}: internal error: the command stopped before it finished (please report this)`);
  process.exitCode = 1;
});
// Belt and braces: the library closes what it opened (a link's socket at most CLOSE_GRACE_MS after
// the migration), so the event loop normally empties at once. Should a handle still be open,
// exit anyway: stdout and stderr are written synchronously to files, pipes and terminals on Linux
// and macOS, so the report is out. The timer is unref'd: it never delays a normal exit.
function exitSoon() {
  setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
}
main(process.argv.slice(2)).then(
  (code) => { settled = true; process.exitCode = code; exitSoon(); },
  (err) => { settled = true; console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 70; exitSoon(); },
);
