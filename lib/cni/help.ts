// What a plugin binary says when a human runs it without CNI_COMMAND (no
// arguments, --help, anything): like the reference skel, the text goes to
// stderr, stdout stays empty (a runtime that forgot CNI_COMMAND must not read
// it as a result), and the exit code is 0. Only an explicit --version answers
// on stdout, as every program does (the release executable answers it itself,
// scripts/release/runtime.js, with the same shape). Loaded lazily by the skel.

import type { Plugin } from './plugin';
import { SUPPORTED_VERSIONS } from './version';

export interface HelpOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- package.json read only when help is shown
  return (require('../../package.json') as { version: string }).version;
}

export function aboutText(plugin: Plugin): string {
  const versions = (plugin.supportedVersions ?? SUPPORTED_VERSIONS).join(', ');
  return `${plugin.name}: ${plugin.description}\nnode-cni-plugins v${packageVersion()}, CNI spec versions ${versions}\n`;
}

function usageText(plugin: Plugin): string {
  return [
    aboutText(plugin).trimEnd(),
    '',
    'This is a CNI plugin: a container runtime runs it with the CNI_COMMAND,',
    'CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH environment',
    'variables and the network configuration as JSON on stdin.',
    `Try: CNI_COMMAND=VERSION ${plugin.name}`,
    '',
    'Options: --help, --version',
    '',
  ].join('\n');
}

export function runHelp(plugin: Plugin, argv: string[]): HelpOutput {
  if (argv.length === 1 && argv[0] === '--version') {
    return { stdout: `${plugin.name} (node-cni-plugins) v${packageVersion()}; CNI spec versions ${(plugin.supportedVersions ?? SUPPORTED_VERSIONS).join(', ')}\n`, stderr: '', exitCode: 0 };
  }
  let text: string;
  if (argv.length === 0) text = aboutText(plugin);
  else if (argv[0] === '--help' || argv[0] === '-h') text = usageText(plugin);
  else text = `${plugin.name}: unknown argument ${JSON.stringify(argv[0])} (without CNI_COMMAND a plugin only prints this help)\n\n${usageText(plugin)}`;
  return { stdout: '', stderr: text, exitCode: 0 };
}
