// ESLint: the module boundaries of DESIGN.md, enforced (scripts/test.sh runs
// it before the unit tier). Syntax only, no type information: the whole tree
// lints in seconds, and tsc (noUnusedLocals/noUnusedParameters) does the rest.
//
//   - node-netlink only in lib/netlink (the kernel facade), the native addon
//     only in lib/sys/native.ts, child_process only in the modules that run
//     one external program each;
//   - a plugin imports no other plugin, nothing imports an IPAM plugin object
//     (ipam/<type>/plugin.ts: the shared IPAM library is ipam/<type>/index.ts),
//     lib/ imports no plugin and no IPAM.
// `require()` counts too: lazy requires (start-up cost) say so in a disable
// comment, and a disable comment that disables nothing is an error.

'use strict';

const tseslint = require('typescript-eslint');

/** What may not be imported (or required) from where: a regex over the module specifier, and why. */
const NETLINK = { regex: '^netlink(/|$)', message: 'node-netlink is used only behind the kernel facade, lib/netlink.' };
const CHILD_PROCESS = { regex: '^(node:)?child_process$', message: 'processes are run only by the modules that run one program each (CHILD_PROCESS_OWNERS in eslint.config.js).' };
const ADDON = { regex: '(^|/)native/build/|\\.node$', message: 'the native addon is loaded only by lib/sys/native.ts.' };
const IPAM_PLUGIN = { regex: '(^|/)ipam/[^/]+/plugin$', message: 'an IPAM plugin object is its executable\'s alone: import the IPAM library (ipam/index.ts, ipam/<type>/index.ts).' };
/** ipam/index.ts (the table of in-process IPAM) names the libraries, not the plugin objects. */
const IPAM_PLUGIN_BESIDE = { regex: '^\\./[^/]+/plugin$', message: IPAM_PLUGIN.message };
const LIB_UP = { regex: '^(\\.\\./)+(plugins|ipam|cli)(/|$)', message: 'lib/ is below the plugins: it imports no plugin, IPAM or CLI.' };
/** From plugins/<p>/<depth-1 folders>/file.ts, "../" depth times reaches plugins/: one more step into a name is another plugin. */
const otherPlugin = (depth) => ({ regex: `^${'\\.\\./'.repeat(depth)}(?!\\.\\./)[^/]+`, message: 'a plugin imports no other plugin: move what both need to lib/.' });

/** The modules that run a program, each its own: delegated plugins, dnsmasq, nft (CLI fallback), iptables. */
const CHILD_PROCESS_OWNERS = ['lib/cni/exec.ts', 'lib/dns/daemon.ts', 'lib/firewall/nft.ts', 'lib/firewall/iptables.ts'];
const NETLINK_OWNERS = ['lib/netlink/**/*.ts'];
const ADDON_OWNERS = ['lib/sys/native.ts'];
const PRODUCTION = ['lib/**/*.ts', 'plugins/**/*.ts', 'ipam/**/*.ts', 'cli/**/*.ts'];

/** A string literal a regex source matches, for an esquery attribute selector. */
const esqueryRegex = (source) => `/${source.replace(/\//g, '\\/')}/`;

/**
 * The rules for one kind of file: no-restricted-imports for import
 * statements, no-restricted-syntax for require() (lazy loads). Flat config
 * replaces a rule's options with a later entry's, so each kind lists all
 * that applies to it.
 */
function restrict(files, { lib = false, pluginDepth = 0, netlink = false, childProcess = false, addon = false, extra = [] } = {}, ignores = []) {
  const banned = [IPAM_PLUGIN, ...extra];
  if (!netlink) banned.push(NETLINK);
  if (!childProcess) banned.push(CHILD_PROCESS);
  if (!addon) banned.push(ADDON);
  if (lib) banned.push(LIB_UP);
  if (pluginDepth) banned.push(otherPlugin(pluginDepth));
  return {
    files,
    ignores,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: banned.map(({ regex, message }) => ({ regex, message })) }],
      'no-restricted-syntax': ['error', ...banned.map(({ regex, message }) => ({
        selector: `CallExpression[callee.name='require'] > Literal.arguments[value=${esqueryRegex(regex)}]`,
        message,
      }))],
    },
  };
}

const OWNERS = [...NETLINK_OWNERS, ...ADDON_OWNERS, ...CHILD_PROCESS_OWNERS];

module.exports = [
  { ignores: ['dist/**', 'build/**', 'native/build/**', 'node_modules/**', 'coverage/**', '**/*.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2022, sourceType: 'module' },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: { '@typescript-eslint/no-require-imports': 'error' },
  },
  restrict(PRODUCTION, {}, OWNERS),
  restrict(['lib/**/*.ts'], { lib: true }, OWNERS),
  restrict(['plugins/*/*.ts'], { pluginDepth: 1 }, OWNERS),
  restrict(['plugins/*/*/*.ts'], { pluginDepth: 2 }, OWNERS),
  restrict(['ipam/*.ts'], { extra: [IPAM_PLUGIN_BESIDE] }, OWNERS),
  restrict(NETLINK_OWNERS, { lib: true, netlink: true }),
  restrict(ADDON_OWNERS, { lib: true, addon: true }),
  restrict(CHILD_PROCESS_OWNERS, { lib: true, childProcess: true }),
];
