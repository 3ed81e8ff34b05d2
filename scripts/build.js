#!/usr/bin/env node
// Builds the release: ONE executable, a Node single executable application
// (the pinned official Node binary from the npm registry + every program's
// code, started from a V8 startup snapshot), and one link per program (every
// plugins/*/ and ipam/*/ with a main.ts, and cnictl) that names it.
//
//   dist/release/node-cni-plugins-linux-<arch>-v<version>.tgz (+ .sha256)   untar into /opt/cni/bin
//   dist/bin/                                                              that tarball, unpacked
//
// Tests, benchmarks and the demo run dist/bin, i.e. what users get.
// Usage: node scripts/build.js [--code-cache] [--out DIR [--floor]] [--keep-stage DIR] [--builder-flag F]... [--exec-flag F]... [--no-hot-functions]
//   --code-cache  start from a V8 code cache instead of a startup snapshot (for comparison, docs/benchmarks/startup.md)
//   --out DIR     lay the unpacked release out in DIR instead of dist/bin (no tarball)
//   --floor       (with --out) the same executable with nothing of ours in its snapshot: an empty main, no assets.
//                 The floor of any program built this way, which scripts/bench/startup.js measures side by side.
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const vm = require('vm');
const { execFileSync, spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
const argv = process.argv.slice(2);
const CODE_CACHE = argv.includes('--code-cache');
const outAt = argv.indexOf('--out');
const OUT_DIR = outAt >= 0 ? path.resolve(argv[outAt + 1]) : null;
// --builder-flag F (repeatable): a V8/Node flag for the Node that builds the snapshot (experiments, docs/benchmarks/startup.md).
const BUILDER_FLAGS = argv.flatMap((a, i) => (a === '--builder-flag' ? [argv[i + 1]] : []));
// --exec-flag F (repeatable): a V8/Node flag the release itself runs with (profiling: scripts/release/profile-hot-functions.sh).
const EXEC_FLAGS = argv.flatMap((a, i) => (a === '--exec-flag' ? [argv[i + 1]] : []));
// --no-hot-functions: compile nothing ahead in the snapshot (to profile what the calls compile).
const HOT_FUNCTIONS = !argv.includes('--no-hot-functions');
const FLOOR = argv.includes('--floor');
if (FLOOR && (!OUT_DIR || CODE_CACHE)) fail('--floor needs --out DIR and a snapshot');
// --keep-stage DIR: keep the staged scripts, SEA config and assets there (to see what the snapshot holds).
const keepAt = argv.indexOf('--keep-stage');
const KEEP_STAGE = keepAt >= 0 ? path.resolve(argv[keepAt + 1]) : null;
const EXECUTABLE = 'node-cni-plugins';
const LICENSES = `${EXECUTABLE}-LICENSES.txt`;
const ARCH = process.arch;

// The Node inside: the official binary as the npm registry ships it (package
// node-linux-<arch>, its tarball covered by the lockfile's integrity), pinned
// here too by the SHA-256 of the binary itself.
const NODE_RUNTIME = {
  version: '24.22.3',
  sha256: { x64: 'a7ec1b37e6ff9d187e4198c5b6df9a4eb1c74dd31804fb3bac55cc4ceca1ac01' },
};
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function fail(msg) {
  throw new Error(`build: ${msg}`);
}

/** Every program: plugins/<name>/main.ts, ipam/<name>/main.ts, cli/cnictl/main.ts. */
function entries() {
  const found = [];
  for (const dir of ['plugins', 'ipam']) {
    const base = path.join(root, dir);
    if (!fs.existsSync(base)) continue;
    for (const name of fs.readdirSync(base).sort()) {
      const main = path.join(base, name, 'main.ts');
      if (fs.existsSync(main)) found.push({ name, main });
    }
  }
  // Tools a person runs by hand (cnictl and its yargs) stay out of the snapshot every plugin call deserializes.
  const cnictl = path.join(root, 'cli', 'cnictl', 'main.ts');
  // Its info (cli/cnictl/info.ts: the CNI versions of its --version line) is in the snapshot.
  if (fs.existsSync(cnictl)) found.push({ name: 'cnictl', main: cnictl, onDemand: true, info: path.join(root, 'cli', 'cnictl', 'info.ts') });
  for (const { name } of found) if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || name === EXECUTABLE) fail(`"${name}" cannot be a program name`);
  return found;
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** The pinned Node binary, checked: right version, right checksum, has the SEA fuse. */
function nodeRuntime() {
  const name = `node-linux-${ARCH}`;
  const want = pkg.optionalDependencies?.[name];
  if (want !== NODE_RUNTIME.version) fail(`package.json must pin ${name} at exactly ${NODE_RUNTIME.version} (it says ${want ?? 'nothing'})`);
  const expected = NODE_RUNTIME.sha256[ARCH];
  if (!expected) fail(`no Node runtime pinned for ${process.platform}-${ARCH}`);
  let dir;
  try {
    dir = path.dirname(require.resolve(`${name}/package.json`, { paths: [root] }));
  } catch {
    fail(`the Node runtime package ${name}@${NODE_RUNTIME.version} is not installed: run \`npm ci\``);
  }
  const installed = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  if (installed !== NODE_RUNTIME.version) fail(`node_modules has ${name}@${installed}, package.json pins ${NODE_RUNTIME.version}: run \`npm ci\``);
  const binary = path.join(dir, 'bin', 'node');
  const bytes = fs.readFileSync(binary);
  const got = sha256(bytes);
  if (got !== expected) fail(`${binary} has SHA-256 ${got}, expected ${expected}: refusing to ship it`);
  if (!bytes.includes(`${SEA_FUSE}:0`)) fail(`${binary} lacks the single-executable fuse ${SEA_FUSE}: this Node cannot become a single executable application`);
  return binary;
}

function buildAddon() {
  const addon = path.join(root, 'native', 'build', 'Release', 'cni_native.node');
  const src = path.join(root, 'native', 'cni_native.c');
  if (fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= fs.statSync(src).mtimeMs) return;
  // N-API: built against any Node's headers, it loads in the Node inside the release.
  const args = ['rebuild'];
  if (fs.existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  const gyp = require.resolve('node-gyp/bin/node-gyp.js');
  execFileSync(process.execPath, [gyp, ...args], { cwd: path.join(root, 'native'), stdio: ['ignore', 'ignore', 'inherit'] });
}

function commitOf() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

/**
 * The functions the common calls compile (scripts/release/hot-functions.txt, made by
 * scripts/release/profile-hot-functions.sh): `ours|node LENGTH HASH NAME`, ours or Node's own (pinned with the Node
 * version), the FNV-1a hash of the last LENGTH characters of its source: a function changed since the profile is
 * simply not found.
 */
function hotFunctions() {
  const lines = fs.readFileSync(path.join(__dirname, 'release', 'hot-functions.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  for (const l of lines) if (!/^(ours|node) \d+ [0-9a-f]{8} /.test(l)) fail(`scripts/release/hot-functions.txt: cannot read "${l}"`);
  return lines;
}

/** The snapshot bundle's entry: import every plugin's main under the release's collector (scripts/release/runtime.js). */
function writeEntry(dir, list) {
  const lines = ['// Generated by scripts/build.js: every program of the release.'];
  for (const { name, main, onDemand, info } of list) {
    lines.push(onDemand
      ? `__cniRelease.addOnDemand(${JSON.stringify(name)}, ${info ? `require(${JSON.stringify(info)}).info` : '{}'});`
      : `__cniRelease.add(${JSON.stringify(name)}, () => require(${JSON.stringify(main)}));`);
  }
  lines.push('__cniRelease.ready();', '');
  const file = path.join(dir, 'programs.js');
  fs.writeFileSync(file, lines.join('\n'));
  return file;
}

// Code that few invocations run and that would make every start deserialize
// (and pay for) it: bundled on its own, carried as a SEA asset and compiled
// when first required (docs/benchmarks/startup.md). `request` is the literal
// require() that loads it; ncc leaves it out of the other bundles.
const ON_DEMAND = [
  { name: 'overlay-agent', request: './agent/cli', main: path.join(root, 'plugins', 'vxlan-overlay', 'agent', 'cli.ts') },
  { name: 'help', request: './help', main: path.join(root, 'lib', 'cni', 'help.ts') },
];

// Files that bundled libraries read at run time but ncc cannot see: a .proto
// imported by another .proto (etcd3's rpc.proto imports kv.proto and auth.proto).
const EXTRA_DATA = { 'rpc.proto': ['kv.proto', 'auth.proto'].map((f) => path.join(root, 'node_modules', 'etcd3', 'proto', f)) };

// Node built-ins that the snapshot builder does not support, or that cost a few
// ms to load, and that our code only uses as namespaces (never calls or
// subclasses the module object itself: a Proxy of {} could not be called).
// ncc turns each into a module `X.exports=require("net")`.
const LAZY_BUILTINS = ['net', 'crypto', 'child_process', 'os', 'util', 'dns', 'tls', 'http2', 'http', 'https', 'zlib', 'worker_threads', 'readline', 'stream', 'url', 'dgram', 'perf_hooks', 'async_hooks', 'process'];

/**
 * ncc turns `require('x.node')` into `require(__nccwpck_require__.ab + "x.node")`
 * and hands us the file as an asset: natives are loaded through the runtime
 * (private dir, checksum), data files are unpacked by it on first use.
 */
function linkAssets(code, assets, stage, linked, lazyBuiltins) {
  const { seaAssets, native, data } = linked;
  const addAsset = (key, buf) => {
    const file = path.join(stage, 'assets', key);
    if (seaAssets[key] && !fs.readFileSync(file).equals(buf)) fail(`two bundles carry different files named ${key}`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, buf);
    seaAssets[key] = file;
  };
  for (const [name, asset] of Object.entries(assets)) {
    const buf = Buffer.from(asset.source);
    if (name.endsWith('.node')) {
      native[name] = sha256(buf);
      addAsset(`native/${name}`, buf);
      const escaped = JSON.stringify(name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const needle = new RegExp(`require\\([A-Za-z_$][\\w$]*\\.ab\\s*\\+\\s*${escaped}\\)`, 'g');
      if (!needle.test(code)) fail(`cannot find the loader of ${name} in the bundle`);
      code = code.replace(needle, `__cniRelease.native(${JSON.stringify(name)})`);
      continue;
    }
    data[name] = sha256(buf);
    addAsset(`data/${name}`, buf);
    for (const extra of EXTRA_DATA[name] ?? []) {
      const rel = path.join(path.dirname(name), path.basename(extra));
      const bytes = fs.readFileSync(extra);
      data[rel] = sha256(bytes);
      addAsset(`data/${rel}`, bytes);
    }
  }
  if (/require\([A-Za-z_$][\w$]*\.ab\s*\+/.test(code)) fail('the bundle still loads a file next to itself');
  if (Object.keys(data).length > 0) {
    const base = '__nccwpck_require__.ab=__dirname+"/"';
    if (!code.includes(base)) fail('cannot find where the bundle sets its asset directory');
    code = code.replace(base, 'Object.defineProperty(__nccwpck_require__,"ab",{get:__cniRelease.assetBase})');
  }
  if (lazyBuiltins) {
    const re = new RegExp(`\\b([A-Za-z_$][\\w$]*)\\.exports=require\\("(${LAZY_BUILTINS.join('|')})"\\)`, 'g');
    code = code.replace(re, (_, m, name) => `${m}.exports=__cniRelease.builtin(${JSON.stringify(name)})`);
  }
  if (lazyBuiltins) {
    // Drop each module's factory once it has run: the snapshot then holds the modules' exports, not the
    // code that made them (with --stress-flush-code below: VERSION -2.3 M instructions, docs/benchmarks/startup.md).
    const loader = /try\{([A-Za-z_$][\w$]*)\[([A-Za-z_$][\w$]*)\]\.call\(([A-Za-z_$][\w$]*)\.exports,\3,\3\.exports,__nccwpck_require__\);([A-Za-z_$][\w$]*)=false\}/;
    if (!loader.test(code)) fail('cannot find the module loader of the bundle');
    code = code.replace(loader, (m, mods, id, mod, failed) => m.replace(`${failed}=false}`, `${failed}=false;delete ${mods}[${id}]}`));
  }
  for (const { name, request } of ON_DEMAND) code = code.split(`require(${JSON.stringify(request)})`).join(`__cniRelease.onDemand(${JSON.stringify(name)})`);
  if (/require\("\.\.?\//.test(code)) fail('a bundle still requires a relative path at run time');
  if (/String\.raw`[^`]*[^\x00-\x7f]/.test(code)) fail('a bundle has a String.raw template with a non-ASCII character (it cannot be escaped)');
  return asciiOnly(code);
}

/**
 * The code with every character outside ASCII written as a \uXXXX escape. V8 keeps a script's source in the heap
 * as one byte per character only when every character fits in Latin-1; one "…" in a message made the whole
 * bundle's source two bytes per character in the snapshot (884 KB instead of 442 KB: copied out of the
 * executable, deserialized and kept by every start). The escape is the same character in a string, template or
 * regular expression literal, and harmless in a comment.
 */
function asciiOnly(code) {
  return code.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One ncc bundle, its assets linked to the runtime's loaders; `except` is the on-demand bundle being made. */
async function bundle(ncc, entry, stage, linked, except) {
  const externals = ON_DEMAND.filter((o) => o.name !== except).map((o) => o.request);
  const { code, assets } = await ncc(entry, { minify: true, quiet: true, sourceMap: false, transpileOnly: true, externals, license: 'licenses.txt' });
  // The licenses of the npm packages ncc bundled, for the tarball's LICENSES file (not an asset of the executable).
  linked.licenses.push(`== npm packages bundled into ${except ?? 'the plugins (startup snapshot)'} ==\n\n${String(assets['licenses.txt']?.source ?? '')}`);
  delete assets['licenses.txt'];
  // Built-ins are stand-ins in the snapshot bundle only: on-demand code is compiled and run after start-up.
  return linkAssets(code.replace(/^#!.*\n/, ''), assets, stage, linked, except === undefined);
}

// The Node that builds the snapshot gets no environment of ours: NODE_OPTIONS
// and friends would otherwise run inside the build and end up in the snapshot.
const BUILDER_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/nonexistent', LANG: 'C' };

/** The snapshot builder's main: the runtime and every program's bundle; `linked` collects assets and licenses. */
async function releaseMain(stage, list, linked) {
  const ncc = require('@vercel/ncc');
  const code = await bundle(ncc, writeEntry(stage, list), stage, linked);
  // On-demand code: each a function of (module, exports, require, __cniRelease, __filename, __dirname), compiled at run time.
  const onDemand = [...ON_DEMAND, ...list.filter((e) => e.onDemand)];
  for (const o of onDemand) {
    const file = path.join(stage, 'assets', 'bundles', `${o.name}.js`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const body = `(function (module, exports, require, __cniRelease, __filename, __dirname) {\n${await bundle(ncc, o.main, stage, linked, o.name)}\n})`;
    new vm.Script(body, { filename: `${o.name}.js` });
    fs.writeFileSync(file, body);
    linked.seaAssets[`bundles/${o.name}.js`] = file;
  }
  const dataSha = sha256(Object.keys(linked.data).sort().map((n) => `${n}\0${linked.data[n]}`).join('\0'));
  const build = { version: pkg.version, commit: commitOf(), executable: EXECUTABLE, native: linked.native, data: linked.data, dataSha };
  const runtime = fs.readFileSync(path.join(__dirname, 'release', 'runtime.js'), 'utf8').replace('/*__BUILD_INFO__*/ {}', () => JSON.stringify(build))
    .replace('/*__HOT_FUNCTIONS__*/ []', () => JSON.stringify(CODE_CACHE || !HOT_FUNCTIONS ? [] : hotFunctions()));
  // The snapshot builder runs the main with require, __filename and __dirname only; ncc's bundle also wants module.
  return asciiOnly(`(function (module, exports) {\n${runtime}\n${code}\n})({ exports: {} }, {});\n`);
}

async function main() {
  const t0 = Date.now();
  const node = nodeRuntime();
  buildAddon();
  const list = entries();
  if (list.length === 0) fail('nothing to build');
  const dist = path.join(root, 'dist');
  fs.mkdirSync(dist, { recursive: true });
  // Builds may run side by side (two test files calling ensureBuilt): each stages alone and renames at the end.
  const stage = fs.mkdtempSync(path.join(dist, '.stage-'));
  try {
    const linked = { seaAssets: {}, native: {}, data: {}, licenses: [] };
    // The floor: what Node itself costs a start from a snapshot with these flags, nothing of ours in it.
    const mainJs = FLOOR ? "require('v8').startupSnapshot.setDeserializeMainFunction(() => {});\n" : await releaseMain(stage, list, linked);
    new vm.Script(mainJs, { filename: 'release main' }); // syntax errors show up here, not in the snapshot builder
    const mainFile = path.join(stage, 'main.js');
    fs.writeFileSync(mainFile, mainJs);

    const seaConfig = {
      main: mainFile,
      output: path.join(stage, 'sea.blob'),
      disableExperimentalSEAWarning: true,
      useSnapshot: !CODE_CACHE,
      useCodeCache: CODE_CACHE,
      // Flags win over the environment Node reads before any JavaScript: no OpenSSL config file (OPENSSL_CONF
      // could name one that loads a provider, i.e. code), ICU data only the built-in (NODE_ICU_DATA names a
      // directory to load it from; nothing exists under /dev/null), no inspector on SIGUSR1; and nothing from NODE_OPTIONS.
      // The snapshot is rehashed at each start (V8's default, -14 M instructions if turned off): a new string hash
      // seed per process, so a config cannot be built to collide in V8's hash tables (a fixed seed per release
      // would let an 8 MiB config of colliding keys stall a plugin; docs/benchmarks/startup.md).
      // --no-sparkplug: no baseline (machine code) tier; a plugin call ends before it pays back (~200 baseline
      // compiles per bridge ADD: -3.4 M instructions; the overlay agent still tiers up to the optimizing compilers).
      // --v8-pool-size=1: one V8 worker thread instead of four. A call is over before background work pays; 64
      // concurrent ADDs on 2 cores are 3 % faster in wall time (1.62 vs 1.66x the reference, paired rounds), VERSION
      // CPU and RSS unchanged; the overlay agent keeps one thread for concurrent GC and compilation.
      execArgv: ['--openssl-config=/dev/null', '--icu-data-dir=/dev/null', '--disable-sigusr1', '--no-sparkplug', '--v8-pool-size=1', ...EXEC_FLAGS],
      execArgvExtension: 'none',
      assets: linked.seaAssets,
    };
    fs.writeFileSync(path.join(stage, 'sea.json'), JSON.stringify(seaConfig, null, 2));
    // --stress-flush-code: the builder's GCs drop bytecode, so the snapshot does not carry the bytecode of every
    // module's top level (run once, at build time) into each start; what an invocation runs is compiled lazily
    // either way (VERSION: -8% instructions, docs/benchmarks/startup.md).
    const r = spawnSync(node, ['--stress-flush-code', ...BUILDER_FLAGS, '--experimental-sea-config', path.join(stage, 'sea.json')], { cwd: stage, env: BUILDER_ENV, encoding: 'utf8' });
    if (r.status !== 0) throw Object.assign(new Error('build: the snapshot builder failed'), { stderr: r.stderr });
    // Warnings (a built-in the snapshot cannot hold, ...) are build errors: they become run-time surprises.
    // Two built-ins Node has not verified in snapshots are let through: the inspector, which lists the heap's
    // functions at build time only, and node:sea, whose functions ask the executable for an asset when called
    // (every asset path, native code, data and bundles, is run by the release tests).
    const unverified = /built-in module "(inspector|node:sea)" works in user snapshot builder scripts/;
    const warnings = r.stderr.split('\n').filter((l) => /Warning/.test(l) && !/Single executable application is an experimental feature/.test(l) && !unverified.test(l));
    if (warnings.length) throw Object.assign(new Error('build: the snapshot builder warned'), { stderr: r.stderr });
    const hotCount = Number(/release: (\d+) hot functions compiled/.exec(r.stderr)?.[1] ?? 0);
    // A search that finds a fraction of the profile's functions means the bundle changed shape: profile again.
    if (!CODE_CACHE && HOT_FUNCTIONS && !FLOOR && hotCount < hotFunctions().length / 4) fail(`the snapshot builder found ${hotCount} of the ${hotFunctions().length} hot functions (scripts/release/hot-functions.txt): run scripts/release/profile-hot-functions.sh`);

    if (!CODE_CACHE) {
      // Node's SEA builder stores, next to the V8 heap, a code cache of every Node built-in it compiled (4.2 MB
      // that each start would copy, and that V8 rejects anyway: it carries the builder's flags). Cut out of the
      // snapshot data here. Node's own switch for it (--build-snapshot-config withoutCodeCache) would also make V8
      // drop the bytecode of every function (FunctionCodeHandling::kClear), which the warm-up in
      // scripts/release/runtime.js compiled on purpose (docs/benchmarks/startup.md).
      const blob = fs.readFileSync(seaConfig.output);
      fs.writeFileSync(seaConfig.output, withSnapshot(blob, withoutBuiltinCodeCache(snapshotOf(blob))));
    }

    const tree = path.join(stage, 'tree');
    fs.mkdirSync(tree);
    const exe = path.join(tree, EXECUTABLE);
    fs.copyFileSync(node, exe);
    fs.chmodSync(exe, 0o755);
    const postject = require.resolve('postject/dist/cli.js', { paths: [root] });
    execFileSync(process.execPath, [postject, exe, 'NODE_SEA_BLOB', seaConfig.output, '--sentinel-fuse', SEA_FUSE], { stdio: ['ignore', 'ignore', 'pipe'] });
    for (const { name } of list) fs.symlinkSync(EXECUTABLE, path.join(tree, name));
    // What the executable holds is redistributed: Node's license (with those of its own dependencies) and the
    // bundled npm packages'. Not named LICENSE: the reference's tarball puts one into the same directory.
    const nodeLicense = fs.readFileSync(path.join(path.dirname(node), '..', 'LICENSE'), 'utf8');
    fs.writeFileSync(path.join(tree, LICENSES), [
      `${EXECUTABLE} v${pkg.version}: ${pkg.license}.`,
      `It contains Node.js v${NODE_RUNTIME.version} (the official linux-${ARCH} binary):\n\n${nodeLicense}`,
      ...linked.licenses,
    ].join('\n\n'));

    if (OUT_DIR) {
      replaceDir(tree, OUT_DIR);
      const what = FLOOR ? `${list.length} links to an empty snapshot` : `${list.length} programs, ${hotCount} hot functions compiled into the snapshot`;
      console.log(`built ${path.relative(root, OUT_DIR) || OUT_DIR}: ${what} (${Date.now() - t0} ms)`);
      return;
    }
    const releaseDir = path.join(dist, 'release');
    fs.mkdirSync(releaseDir, { recursive: true });
    const base = `${EXECUTABLE}-linux-${ARCH}-v${pkg.version}.tgz`;
    const tgz = path.join(stage, base);
    // The tarball's entries sit at its top, like the reference's: `tar -xzf ... -C /opt/cni/bin` installs.
    execFileSync('tar', ['-czf', tgz, '--owner=0', '--group=0', '--numeric-owner', '-C', tree, EXECUTABLE, LICENSES, ...list.map((e) => e.name)]);
    const sum = `${sha256(fs.readFileSync(tgz))}  ${base}\n`;
    fs.writeFileSync(`${tgz}.sha256`, sum);
    // dist/bin is the tarball unpacked, so everything that runs dist/bin runs what users get.
    const unpacked = path.join(stage, 'bin');
    fs.mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', tgz, '-C', unpacked]);
    fs.renameSync(tgz, path.join(releaseDir, base));
    fs.renameSync(`${tgz}.sha256`, path.join(releaseDir, `${base}.sha256`));
    replaceDir(unpacked, path.join(dist, 'bin'));
    const mib = (fs.statSync(path.join(releaseDir, base)).size / 1048576).toFixed(1);
    console.log(`built dist/release/${base} (${mib} MiB) and dist/bin: ${list.map((e) => e.name).join(' ')}; ${hotCount} hot functions compiled into the snapshot (${Date.now() - t0} ms)`);
  } finally {
    if (KEEP_STAGE) fs.cpSync(stage, KEEP_STAGE, { recursive: true, filter: (f) => !f.endsWith('.blob') && !f.includes(`${path.sep}tree`) && !f.includes(`${path.sep}bin`) });
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * A SEA blob (as Node 24 writes it: src/node_sea.cc SeaSerializer): where its snapshot field starts and ends.
 * Layout: magic u32, flags u32, exec-argv-extension u8, code path, snapshot, [assets: u64 count, (key,
 * content)...], [exec argv: u64 count, string...]; strings are u64 length + bytes. Every field is read back to
 * the last byte, so a Node that writes another layout fails the build here.
 */
function seaSnapshotField(blob) {
  const SEA_MAGIC = 0x0143da20, USE_SNAPSHOT = 1 << 1, USE_CODE_CACHE = 1 << 2, INCLUDE_ASSETS = 1 << 3, INCLUDE_EXEC_ARGV = 1 << 4;
  let at = 0;
  const u64 = () => { const v = Number(blob.readBigUInt64LE(at)); at += 8; return v; };
  const bytes = () => { const n = u64(); const b = blob.subarray(at, at + n); if (b.length !== n) fail('the SEA blob ends inside a field'); at += n; return b; };
  if (blob.readUInt32LE(0) !== SEA_MAGIC) fail('the SEA blob does not start with its magic number');
  const flags = blob.readUInt32LE(4);
  at = 9;
  if ((flags & USE_SNAPSHOT) === 0 || (flags & USE_CODE_CACHE) !== 0) fail(`unexpected SEA flags ${flags.toString(16)}`);
  bytes(); // code path
  const start = at;
  const snapshot = bytes();
  const end = at;
  if (flags & INCLUDE_ASSETS) for (let n = u64(); n > 0; n--) { bytes(); bytes(); }
  if (flags & INCLUDE_EXEC_ARGV) for (let n = u64(); n > 0; n--) bytes();
  if (at !== blob.length) fail(`the SEA blob has ${blob.length - at} bytes this build does not understand`);
  return { start, end, snapshot };
}

const snapshotOf = (blob) => seaSnapshotField(blob).snapshot;

/** The SEA blob with its snapshot field replaced. */
function withSnapshot(blob, snapshot) {
  const { start, end } = seaSnapshotField(blob);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(snapshot.length));
  return Buffer.concat([blob.subarray(0, start), length, snapshot, blob.subarray(end)]);
}

/**
 * Node 24's snapshot data (src/node_snapshotable.cc SnapshotData::ToBlob) without the code cache of its
 * built-ins, the last field. Layout, read field by field: magic u32; metadata (type u8, Node version, arch,
 * platform, flags u32); the V8 startup blob (i32 size + bytes); isolate data (vector of u64
 * indices, vector of PropInfo); the environment (async hooks: 4 u64 + vector of u64; then 10 u64 indices in
 * 24.22.3: tick, immediate and timeout info, performance state, exit info, stream base state, abort toggle; the principal
 * realm: vector of built-in ids, two vectors of PropInfo, u64 context index); the code cache: vector of (id,
 * vector of bytes). Strings are u64 length + bytes, vectors u64 count + elements, PropInfo is (string,
 * u32, u64). The build fails on anything else: another version, a field that runs past the end, bytes left over.
 */
function withoutBuiltinCodeCache(snap) {
  const SNAPSHOT_MAGIC = 0x0143da19;
  let at = 0;
  const need = (n) => { if (at + n > snap.length) fail('the snapshot data ends inside a field'); };
  const u8 = () => { need(1); return snap[at++]; };
  const u32 = () => { need(4); const v = snap.readUInt32LE(at); at += 4; return v; };
  const u64 = () => { need(8); const v = snap.readBigUInt64LE(at); at += 8; if (v > BigInt(snap.length)) fail('a count or index of the snapshot data is out of range'); return Number(v); };
  const skip = (n) => { need(n); at += n; };
  const str = () => {
    const n = u64();
    if (n === 0) fail('the snapshot data has an empty string where Node writes none');
    need(n);
    const s = snap.toString('latin1', at, at + n);
    at += n;
    return s;
  };
  const vec = (item) => { const out = []; for (let n = u64(); n > 0; n--) out.push(item()); return out; };
  const propInfo = () => { str(); u32(); u64(); };
  if (u32() !== SNAPSHOT_MAGIC) fail('the snapshot data does not start with its magic number');
  u8(); // snapshot type
  const version = str();
  if (version !== `v${NODE_RUNTIME.version}` && version !== NODE_RUNTIME.version) fail(`the snapshot data was written by Node ${version}, this build reads ${NODE_RUNTIME.version}'s`);
  str(); str(); // arch, platform
  const flags = u32();
  if (flags !== 0) fail(`the snapshot data has flags ${flags} (1: built without code cache); this build expects 0`);
  need(4);
  const v8Size = snap.readInt32LE(at);
  at += 4;
  if (v8Size <= 0) fail('the snapshot data has no V8 startup blob');
  skip(v8Size);
  vec(u64); vec(propInfo); // isolate data: primitive values, template values
  u64(); u64(); u64(); u64(); vec(u64); // async hooks
  for (let i = 0; i < 10; i++) u64(); // the indices of tick, immediate, timeout info, performance state, exit info, stream base state, abort toggle
  vec(str); vec(propInfo); vec(propInfo); u64(); // principal realm: builtins, persistent values, native objects, context
  const cacheAt = at;
  const ids = vec(() => { const id = str(); skip(u64()); return id; });
  if (at !== snap.length) fail(`the snapshot data has ${snap.length - at} bytes this build does not understand`);
  if (ids.length === 0 || !ids.every((id) => /^[a-z_][\w/.-]*$/.test(id))) fail('the snapshot data holds no code cache of built-in modules where it should');
  const none = Buffer.alloc(8); // an empty vector
  return Buffer.concat([snap.subarray(0, cacheAt), none]);
}

/** Put `from` where `to` is, replacing it (a directory) in two renames. */
function replaceDir(from, to) {
  const old = `${to}.old-${process.pid}`;
  if (fs.existsSync(to)) fs.renameSync(to, old);
  fs.renameSync(from, to);
  fs.rmSync(old, { recursive: true, force: true });
}

main().catch((err) => {
  // A failing snapshot builder quotes the minified line: keep the messages, not the megabyte.
  const clip = (text) => String(text).split('\n').map((l) => (l.length > 300 ? `${l.slice(0, 300)}...` : l)).join('\n');
  console.error(clip(err.stderr ? `${err.message}\n${err.stderr}` : err.stack || String(err)));
  process.exit(1);
});
