/**
 * The `pagewire` command. Subcommands are dispatched from here.
 */
export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? 'help';
  if (cmd === 'demo') {
    console.log('pagewire: the migration demo is coming with the migration engine.');
    return 0;
  }
  console.log('usage: pagewire <command> [options]');
  return cmd === 'help' || cmd === '--help' ? 0 : 64;
}
