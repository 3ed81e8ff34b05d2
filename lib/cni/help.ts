// What a plugin binary says when a human runs it without CNI_COMMAND
// (--help, --version, no arguments). Loaded lazily by the skel so the CNI path
// never loads yargs.

import yargs from 'yargs/yargs';
import type { Plugin } from './plugin';
import { SUPPORTED_VERSIONS } from './version';

export interface HelpOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('../../package.json') as { version: string }).version;
}

export function aboutText(plugin: Plugin): string {
  const versions = (plugin.supportedVersions ?? SUPPORTED_VERSIONS).join(', ');
  return `${plugin.name}: ${plugin.description}\nnode-cni-plugins v${packageVersion()}, CNI spec versions ${versions}\n`;
}

export function runHelp(plugin: Plugin, argv: string[]): HelpOutput {
  const versionLine = `${plugin.name} (node-cni-plugins) v${packageVersion()}; CNI spec versions ${(plugin.supportedVersions ?? SUPPORTED_VERSIONS).join(', ')}`;
  const usage = [
    aboutText(plugin).trimEnd(),
    '',
    'This is a CNI plugin: a container runtime runs it with the CNI_COMMAND,',
    'CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH environment',
    'variables and the network configuration as JSON on stdin.',
    'Try: CNI_COMMAND=VERSION ' + plugin.name,
  ].join('\n');
  let out = '';
  let failed: Error | undefined;
  const parser = yargs(argv)
    .scriptName(plugin.name)
    .usage(usage)
    .version(versionLine)
    .help()
    .strict()
    .exitProcess(false);
  parser.parse(argv, {}, (err, _args, output) => {
    failed = err ?? undefined;
    out = output ?? '';
  });
  if (failed) return { stdout: '', stderr: `${out || failed.message}\n`, exitCode: 1 };
  // No arguments: say what we are (the reference skel prints its "about" and exits 0).
  if (argv.length === 0) out = aboutText(plugin);
  return { stdout: out.endsWith('\n') ? out : `${out}\n`, stderr: '', exitCode: 0 };
}
