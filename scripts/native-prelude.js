// Prepended to every dist/bin bundle by scripts/build.js.
//
// 1. Native addons travel inside the file as base64; before loading one we
//    write it (once) into a directory only this user (root, for a plugin) can
//    write, and check its SHA-256 on every load, so nobody can swap the code
//    we dlopen.
// 2. Start-up: the bundle body follows this prelude as `//` comment lines, so
//    Node's own compile of this file only scans comments. We read the body
//    back, compile it with vm.Script using a V8 code cache kept in the same
//    private directory (keyed by the body's SHA-256 and the CNI verb, written
//    atomically at exit, rewritten when V8 rejects it), and call it with the
//    usual CommonJS arguments. A plugin is short-lived and always runs the
//    same code, so most of its compile time is otherwise spent again on
//    every invocation.
// 3. Native addons and a few Node built-ins are handed out as stand-ins that
//    load on first use, so a VERSION does not dlopen netlink or load `net`.
const __cniPrivateDir = (() => {
  let dir;
  return function privateDir() {
    if (dir) return dir;
    const fs = require('fs'), path = require('path'), os = require('os');
    const uid = process.geteuid ? process.geteuid() : 0;
    const base = process.env.CNI_NATIVE_DIR
      || (uid === 0 ? '/run/node-cni-plugins/native' : path.join(os.tmpdir(), `node-cni-plugins-${uid}`));
    fs.mkdirSync(base, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(base);
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
      throw new Error(`refusing to load native code from "${base}": it must be a directory owned by uid ${uid} and writable by no one else`);
    }
    dir = base;
    return dir;
  };
})();

const __cniNative = (() => {
  const blobs = /*__NATIVE_BLOBS__*/ {};
  const loaded = new Map();
  function load(name) {
    if (loaded.has(name)) return loaded.get(name);
    const blob = blobs[name];
    if (!blob) throw new Error(`native module "${name}" is not embedded in this executable`);
    const fs = require('fs'), path = require('path'), crypto = require('crypto');
    const [sha, b64] = blob;
    const file = path.join(__cniPrivateDir(), `${sha}.node`);
    const sum = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
    let ok = false;
    try { ok = sum(fs.readFileSync(file)) === sha; } catch { ok = false; }
    if (!ok) {
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, Buffer.from(b64, 'base64'), { mode: 0o500 });
      fs.renameSync(tmp, file);
      if (sum(fs.readFileSync(file)) !== sha) throw new Error(`native module "${name}" failed its checksum`);
    }
    const mod = { exports: {} };
    process.dlopen(mod, file);
    loaded.set(name, mod.exports);
    return mod.exports;
  }
  // node-netlink requires its addon when its module is evaluated, which every
  // verb of a netlink plugin does, VERSION included. Hand out a stand-in that
  // loads (dlopen, crypto, SHA-256 check) on first use instead.
  return function lazyLoad(name) {
    return loaded.has(name) ? loaded.get(name) : __cniLazy(() => load(name));
  };
})();

// Data files a bundled library reads from disk (etcd3's .proto files for the
// overlay agent). ncc addresses them as `__nccwpck_require__.ab + name`; the
// build makes `ab` a getter that calls this, so they are unpacked, on first
// use only, into the same private directory, one folder per content hash.
const __cniAssetBase = (() => {
  const assets = /*__DATA_ASSETS__*/ {};
  let base;
  return function assetBase() {
    if (base) return base;
    const fs = require('fs'), path = require('path'), crypto = require('crypto');
    const names = Object.keys(assets).sort();
    const h = crypto.createHash('sha256');
    for (const n of names) h.update(n).update('\0').update(assets[n]).update('\0');
    const dir = path.join(__cniPrivateDir(), `assets-${h.digest('hex').slice(0, 32)}`);
    if (!fs.existsSync(path.join(dir, '.complete'))) {
      const tmp = `${dir}.${process.pid}.tmp`;
      fs.rmSync(tmp, { recursive: true, force: true });
      for (const n of names) {
        const file = path.join(tmp, n);
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        fs.writeFileSync(file, Buffer.from(assets[n], 'base64'), { mode: 0o400 });
      }
      fs.writeFileSync(path.join(tmp, '.complete'), '');
      try { fs.renameSync(tmp, dir); } catch (err) {
        // Another process unpacked the same content first.
        fs.rmSync(tmp, { recursive: true, force: true });
        if (!fs.existsSync(path.join(dir, '.complete'))) throw err;
      }
    }
    base = dir + path.sep;
    return base;
  };
})();

// A stand-in object for what `load()` returns, loaded on first use. Only for
// plain namespace objects: a Proxy of {} cannot be called or constructed.
function __cniLazy(load) {
  let real;
  const get = () => (real ??= load());
  return new Proxy({}, {
    get: (_, k) => Reflect.get(get(), k),
    set: (_, k, v) => Reflect.set(get(), k, v),
    has: (_, k) => Reflect.has(get(), k),
    ownKeys: () => Reflect.ownKeys(get()),
    // Reported configurable: the stand-in target has none of these properties (Proxy invariants).
    getOwnPropertyDescriptor: (_, k) => {
      const d = Reflect.getOwnPropertyDescriptor(get(), k);
      return d && { ...d, configurable: true };
    },
    defineProperty: (_, k, d) => Reflect.defineProperty(get(), k, d),
    deleteProperty: (_, k) => Reflect.deleteProperty(get(), k),
    getPrototypeOf: () => Reflect.getPrototypeOf(get()),
  });
}

(() => {
  const PLUGIN = /*__PLUGIN__*/ '';
  const BODY_SHA = /*__BODY_SHA__*/ '';
  const ESCAPED = /*__ESCAPED__*/ false;
  const MARKER = '\n//__CNI_BODY__\n';
  const fs = require('fs'), path = require('path'), vm = require('vm');
  // The build keeps this file ASCII (non-ASCII code units travel as \x01XXXX), so latin1 is exact and fast.
  const text = fs.readFileSync(__filename, 'latin1');
  const at = text.indexOf(MARKER);
  if (at < 0) throw new Error(`${__filename}: bundle body not found (damaged executable?)`);
  // Every body line was prefixed with "//" by the build (which refuses bodies with other line terminators).
  let body = text.slice(at + MARKER.length).replace(/^\/\//gm, '');
  if (ESCAPED) body = body.replace(/\x01([0-9a-f]{4})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  const source = `(function (exports, require, module, __filename, __dirname, __cniNative, __cniBuiltin, __cniAssetBase) {${body}\n})`;

  // One cache per verb: the functions a VERSION compiles are not those of an ADD.
  const verb = /^[A-Z]{1,10}$/.test(process.env.CNI_COMMAND || '') ? process.env.CNI_COMMAND : 'none';
  const prefix = `${PLUGIN}.`;
  const suffix = `.${process.versions.v8}.${verb}.jscache`;
  let dir = '';
  let cachedData;
  try {
    dir = __cniPrivateDir();
    cachedData = fs.readFileSync(path.join(dir, prefix + BODY_SHA + suffix));
  } catch {
    cachedData = undefined; // no cache yet, or no usable private directory: compile normally
  }
  const script = new vm.Script(source, { filename: __filename, cachedData });
  if (dir && (!cachedData || script.cachedDataRejected)) {
    // Written at exit so the cache also holds the functions this run compiled lazily.
    process.once('exit', () => {
      try {
        const file = path.join(dir, prefix + BODY_SHA + suffix);
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        fs.renameSync(tmp, file);
        // Caches of this plugin's earlier builds would pile up in /run otherwise. Only day-old ones: two
        // different builds in use side by side must not keep deleting each other's cache.
        for (const f of fs.readdirSync(dir)) {
          if (!f.startsWith(prefix) || !f.endsWith(suffix) || f === path.basename(file)) continue;
          const stale = path.join(dir, f);
          if (Date.now() - fs.statSync(stale).mtimeMs > 86400e3) fs.rmSync(stale, { force: true });
        }
      } catch {
        // A cache is an optimisation; never fail an invocation over it.
      }
    });
  }
  // Node built-ins the bundle names (scripts/build.js LAZY_BUILTINS) load when first used, not when a module naming them is evaluated.
  const builtin = (name) => __cniLazy(() => require(name));
  script.runInThisContext()(exports, require, module, __filename, __dirname, __cniNative, builtin, __cniAssetBase);
})();
