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
main(process.argv.slice(2)).then(
  (code) => { settled = true; process.exitCode = code; },
  (err) => { settled = true; console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 70; },
);
