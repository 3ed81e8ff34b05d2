#!/usr/bin/env node
// Builds dist/bin/<name> for every plugin and for cnictl: one executable file
// each (ncc bundle + embedded native addons), needing only Node >= 20.
// Usage: node scripts/build.js [--out DIR] [name ...]
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const vm = require('vm');
const { execFileSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const outAt = argv.indexOf('--out');
// --out DIR: build somewhere else than dist/bin (benchmarks, experiments).
const outDir = outAt >= 0 ? path.resolve(argv.splice(outAt, 2)[1]) : path.join(root, 'dist', 'bin');

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
  const cnictl = path.join(root, 'cli', 'cnictl', 'main.ts');
  if (fs.existsSync(cnictl)) found.push({ name: 'cnictl', main: cnictl });
  return found;
}

function buildAddon() {
  const addon = path.join(root, 'native', 'build', 'Release', 'cni_native.node');
  const src = path.join(root, 'native', 'cni_native.c');
  if (fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= fs.statSync(src).mtimeMs) return;
  const args = ['rebuild'];
  if (fs.existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  const gyp = require.resolve('node-gyp/bin/node-gyp.js');
  execFileSync(process.execPath, [gyp, ...args], { cwd: path.join(root, 'native'), stdio: ['ignore', 'ignore', 'inherit'] });
}

// ncc turns `require('x.node')` into `require(__nccwpck_require__.ab + "x.node")`
// and hands us the binary as an asset; we swap in the embedded loader.
function embedNative(name, code, assets) {
  const blobs = {};
  for (const [name, asset] of Object.entries(assets)) {
    if (!name.endsWith('.node')) continue;
    const buf = Buffer.from(asset.source);
    blobs[name] = [crypto.createHash('sha256').update(buf).digest('hex'), buf.toString('base64')];
    const escaped = JSON.stringify(name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const needle = new RegExp(`require\\([A-Za-z_$][\\w$]*\\.ab\\s*\\+\\s*${escaped}\\)`, 'g');
    if (!needle.test(code)) throw new Error(`build: cannot find the loader of ${name} in the bundle`);
    code = code.replace(needle, `__cniNative(${JSON.stringify(name)})`);
  }
  if (/require\([A-Za-z_$][\w$]*\.ab\s*\+/.test(code)) throw new Error('build: the bundle still loads a file next to itself; it would not be single-file');
  const data = dataAssets(assets);
  if (Object.keys(data).length > 0) {
    const base = '__nccwpck_require__.ab=__dirname+"/"';
    if (!code.includes(base)) throw new Error('build: cannot find where the bundle sets its asset directory');
    code = code.replace(base, 'Object.defineProperty(__nccwpck_require__,"ab",{get:__cniAssetBase})');
  }
  return withPrelude(name, lazyBuiltins(code), blobs, data);
}

// Files that bundled libraries read at run time but ncc cannot see: a .proto
// imported by another .proto (etcd3's rpc.proto imports kv.proto and auth.proto).
const EXTRA_DATA = { 'rpc.proto': ['kv.proto', 'auth.proto'].map((f) => path.join(root, 'node_modules', 'etcd3', 'proto', f)) };

// Non-native assets (data files) travel embedded too, unpacked on first use by the prelude.
function dataAssets(assets) {
  const data = {};
  for (const [name, asset] of Object.entries(assets)) {
    if (name.endsWith('.node')) continue;
    data[name] = Buffer.from(asset.source).toString('base64');
    for (const extra of EXTRA_DATA[name] ?? []) data[path.join(path.dirname(name), path.basename(extra))] = fs.readFileSync(extra).toString('base64');
  }
  return data;
}

// Node built-ins that cost a few ms to load and that our code only uses as
// namespaces (never calls or subclasses the module object itself: a Proxy of
// {} could not be called). ncc turns each into a module `X.exports=require("net")`.
const LAZY_BUILTINS = ['net', 'crypto', 'child_process', 'os', 'util'];
function lazyBuiltins(code) {
  const re = new RegExp(`\\b([A-Za-z_$][\\w$]*)\\.exports=require\\("(${LAZY_BUILTINS.join('|')})"\\)`, 'g');
  return code.replace(re, (_, m, name) => `${m}.exports=__cniBuiltin(${JSON.stringify(name)})`);
}

// The body goes after the prelude as `//` lines (see native-prelude.js): Node
// only scans it as comments, the prelude compiles it with a V8 code cache.
// Code units outside ASCII (and \x01, the escape) become \x01XXXX so the
// file stays ASCII: Node and the prelude then read it on their fast paths.
function withPrelude(name, body, blobs, data) {
  if (/[\r\u2028\u2029]/.test(body)) throw new Error('build: the bundle contains a \\r, U+2028 or U+2029 line terminator; it cannot travel as // comments');
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  const escaped = body.replace(/[\x01\x80-\uffff]/g, (c) => `\x01${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const prelude = fs.readFileSync(path.join(__dirname, 'native-prelude.js'), 'utf8')
    .replace('/*__NATIVE_BLOBS__*/ {}', () => JSON.stringify(blobs))
    .replace('/*__DATA_ASSETS__*/ {}', () => JSON.stringify(data))
    .replace("/*__PLUGIN__*/ ''", () => JSON.stringify(name))
    .replace("/*__BODY_SHA__*/ ''", () => JSON.stringify(sha))
    .replace('/*__ESCAPED__*/ false', () => String(escaped !== body));
  const out = `${prelude}\n//__CNI_BODY__\n${escaped.replace(/^/gm, '//')}\n`;
  // Syntax errors show up here, not in the field: the file as Node compiles it, and the body as the prelude does.
  new vm.Script(`(function (exports, require, module, __filename, __dirname) {${out}\n})`, { filename: `dist/bin/${name}` });
  new vm.Script(`(function () {${body}\n})`, { filename: `dist/bin/${name} (body)` });
  return out;
}

async function buildOne(ncc, { name, main }) {
  const t0 = Date.now();
  const { code, assets } = await ncc(main, { minify: true, quiet: true, sourceMap: false, transpileOnly: true });
  let out = embedNative(name, code.replace(/^#!.*\n/, ''), assets);
  out = `#!/usr/bin/env node\n${out}`;
  const file = path.join(outDir, name);
  fs.writeFileSync(`${file}.tmp`, out, { mode: 0o755 });
  fs.renameSync(`${file}.tmp`, file);
  console.log(`built ${path.relative(root, file)} (${(out.length / 1024).toFixed(0)} KiB, ${Date.now() - t0} ms)`);
}

async function main() {
  const only = argv;
  buildAddon();
  fs.mkdirSync(outDir, { recursive: true });
  const ncc = require('@vercel/ncc');
  const list = entries().filter((e) => only.length === 0 || only.includes(e.name));
  if (list.length === 0) throw new Error('build: nothing to build');
  for (const e of list) await buildOne(ncc, e);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
