// `cnictl netns add|del|list`: named namespaces like `ip netns`, for tests and demos.
import type { Argv } from 'yargs';
import { createNamedNetns, deleteNamedNetns, listNamedNetns } from '../../lib/netns';

export function netnsCommand(y: Argv): Argv {
  return y.command('netns <action> [name]', 'manage named network namespaces (/run/netns/NAME), like ip netns', (sub) =>
    sub
      .positional('action', { choices: ['add', 'del', 'list'] as const, describe: 'add NAME | del NAME | list' })
      .positional('name', { type: 'string', describe: 'namespace name' })
      .check((a) => {
        if (a.action !== 'list' && !a.name) throw new Error(`netns ${a.action} needs a NAME`);
        return true;
      })
      .example('$0 netns add ctr1', 'create /run/netns/ctr1')
      .example('$0 netns del ctr1', 'delete it (succeeds if already gone)'),
  (a) => {
    if (a.action === 'add') process.stdout.write(`${createNamedNetns(a.name as string)}\n`);
    else if (a.action === 'del') deleteNamedNetns(a.name as string);
    else for (const n of listNamedNetns()) process.stdout.write(`${n}\n`);
  });
}
