// cnictl: run CNI networks like cnitool, and manage test namespaces.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- yargs/yargs is `export =`; tsconfig has no esModuleInterop (its import * helper made ~2700 getter closures in the snapshot)
import yargs = require('yargs/yargs');
import { hideBin } from 'yargs/helpers';
import { startMain } from '../../lib/util/main';
import { reportAndExit } from './errors';
import { info } from './info';
import { netnsCommand } from './netns';
import { networkCommands } from './network';

async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- package.json, not bundled as a module
  const version = (require('../../package.json') as { version: string }).version;
  let cli = yargs(hideBin(process.argv)).scriptName('cnictl').usage('$0 <command> [args]\n\nRun CNI networks (like cnitool) and manage network namespaces.');
  cli = networkCommands(netnsCommand(cli));
  await cli
    .demandCommand(1, 'say what to do: add, check, del, gc, rm, status or netns')
    .strict()
    .version(`cnictl (node-cni-plugins) v${version}`)
    .help()
    .alias('h', 'help')
    .fail((msg, err, y) => {
      if (err) reportAndExit(err);
      y.showHelp();
      process.stderr.write(`\ncnictl: ${msg}\n`);
      process.exit(2);
    })
    .parseAsync();
}

startMain(() => {
  main().catch(reportAndExit);
}, info);
