/**
 * The `pagewire` command. Subcommands are dispatched from here; each lives in its own module.
 */
import { readFileSync } from 'node:fs';
import { PagewireError } from '../errors.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

const HELP = `pagewire: memory-page transfer for live migration

usage: pagewire <command> [options]      (pagewire <command> --help for its options)
       pagewire --version

commands:
  simulate   source and target in one process with a simulated guest (memory or loopback TCP)
  serve      a target that receives a migration over TCP
  migrate    a source with a simulated guest that migrates to a serving target
  demo       a real migration over loopback TCP to a target in a child process (npm start)
  snapshot   write the migration stream of a guest to a file (full or incremental)
  restore    rebuild memory from a snapshot and verify its digest
  inspect    summarise a snapshot or captured stream

exit codes: 0 ok, 2 usage error, 3 failed (the source guest keeps running), 4 verification failed`;

/** The version in the package's package.json (dist/cli/main.js -> ../../package.json). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

type Command = (argv: string[]) => Promise<number>;

async function command(name: string): Promise<Command | null> {
  switch (name) {
    case 'simulate': return (await import('./simulate.js')).simulate;
    case 'serve': return (await import('./simulate.js')).serve;
    case 'migrate': return (await import('./simulate.js')).migrate;
    case 'demo': return (await import('./simulate.js')).demo;
    case 'snapshot': return (await import('./snapshot.js')).snapshot;
    case 'restore': return (await import('./snapshot.js')).restore;
    case 'inspect': return (await import('./snapshot.js')).inspect;
    default: return null;
  }
}

/**
 * Run the command line.
 * @returns the process exit code
 */
export async function main(argv: string[]): Promise<number> {
  const name = argv[0] ?? 'help';
  if (name === 'help' || name === '--help' || name === '-h') {
    console.log(HELP);
    return EXIT.OK;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    console.log(packageVersion());
    return EXIT.OK;
  }
  const cmd = await command(name);
  if (!cmd) {
    console.error(`pagewire: unknown command "${name}"\n\n${HELP}`);
    return EXIT.USAGE;
  }
  try {
    return await cmd(argv.slice(1));
  } catch (err) {
    const code = exitCodeFor(err);
    if (err instanceof PagewireError) {
      console.error(`pagewire ${name}: ${err.code}: ${err.message}`);
      if (code === EXIT.USAGE) console.error(`(pagewire ${name} --help lists the options)`);
    }
    else console.error(`pagewire ${name}: internal error: ${err instanceof Error ? err.stack : String(err)}`);
    return code === EXIT.OK ? EXIT.INTERNAL : code;
  }
}
