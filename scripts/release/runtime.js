// The start of the release executable, a Node single executable application
// (SEA) that holds every program (each plugin, cnictl). scripts/build.js puts
// this file in front of the ncc bundle of all the programs' mains and builds
// the SEA from it with a V8 startup snapshot:
//
// 1. Build time (inside the snapshot builder): the bundle imports every
//    plugin's main; each hands its start to startMain (lib/util/main.ts), which
//    this file collects instead of running. Every module is evaluated here,
//    once. Code few invocations run (cnictl, the overlay agent, --help) is in
//    on-demand bundles, compiled at run time when first required.
// 2. Run time (after the snapshot is deserialized): `dispatch` picks the
//    program by the name the executable was started as (a link such as
//    /opt/cni/bin/bridge; argv0, since /proc/self/exe names the target) and
//    runs only its start.
//
// What a snapshot cannot hold is made at run time, on first use: native
// addons (dlopen handles) travel as SEA assets, are unpacked into a directory
// only root can write and checked against the shipped bytes on every load; data
// files (etcd3's .proto) are unpacked there too; Node built-ins that the
// snapshot builder does not support (net, child_process, ...) are stand-ins
// that load when first touched.
const __cniRelease = (() => {
  const BUILD = /*__BUILD_INFO__*/ {};
  const EXECUTABLE = BUILD.executable;
  const COLLECTOR = Symbol.for('node-cni-plugins.main-collector');

  // Node variables that still act after the SEA config (execArgvExtension
  // "none" ignores NODE_OPTIONS): a runtime's environment reaches every plugin
  // unfiltered. Removed in a deserialize callback, before any program code, so
  // lazy readers (NODE_TLS_REJECT_UNAUTHORIZED, NODE_REDIRECT_WARNINGS,
  // UV_THREADPOOL_SIZE...) and the programs we start do not see them. What Node
  // reads before this code runs (NODE_CHANNEL_FD, NODE_COMPILE_CACHE) and each
  // decision: docs/benchmarks/startup.md ("Environment").
  const NODE_ENVIRONMENT = [
    'NODE_OPTIONS', 'NODE_PATH', 'NODE_TLS_REJECT_UNAUTHORIZED', 'NODE_REDIRECT_WARNINGS', 'NODE_NO_WARNINGS',
    'NODE_PENDING_DEPRECATION', 'NODE_DEBUG', 'NODE_DEBUG_NATIVE', 'NODE_V8_COVERAGE', 'NODE_COMPILE_CACHE',
    'NODE_USE_ENV_PROXY', 'NODE_USE_SYSTEM_CA', 'NODE_EXTRA_CA_CERTS', 'NODE_ICU_DATA', 'NODE_CHANNEL_FD',
    'NODE_CHANNEL_SERIALIZATION_MODE', 'NODE_UNIQUE_ID', 'NODE_PRESERVE_SYMLINKS', 'NODE_TEST_CONTEXT',
    'UV_THREADPOOL_SIZE',
  ];
  function forgetNodeEnvironment() {
    // Coverage collection started before us; stopped, nothing is written at exit (Node says so on stderr).
    if (process.env.NODE_V8_COVERAGE) require('v8').stopCoverage();
    for (const name of NODE_ENVIRONMENT) delete process.env[name];
  }

  function privateDir() {
    if (privateDir.dir) return privateDir.dir;
    const fs = require('fs'), path = require('path'), os = require('os');
    const uid = process.geteuid();
    const base = process.env.CNI_NATIVE_DIR
      || (uid === 0 ? '/run/node-cni-plugins/native' : path.join(os.tmpdir(), `node-cni-plugins-${uid}`));
    fs.mkdirSync(base, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(base);
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
      const owner = st.isDirectory() ? `a directory owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}` : 'not a directory';
      throw new Error(`refusing to load native code from "${base}" (${owner}): it must be a directory owned by uid ${uid} and writable by no one else`);
    }
    privateDir.dir = base;
    return base;
  }

  function asset(key) {
    return Buffer.from(require('node:sea').getAsset(key));
  }

  // Every load checks the unpacked file byte for byte against the copy inside
  // this executable (named by its SHA-256, computed at build time): as strict
  // as a checksum, and a memcmp instead of hashing it, which would load
  // crypto (~70 M instructions) into every call that switches namespaces.
  const natives = new Map();
  function loadNative(name) {
    if (natives.has(name)) return natives.get(name);
    const sha = BUILD.native[name];
    if (!sha) throw new Error(`native module "${name}" is not embedded in this executable`);
    const fs = require('fs'), path = require('path');
    const file = path.join(privateDir(), `${sha}.node`);
    const shipped = asset(`native/${name}`);
    let ok = false;
    try { ok = fs.readFileSync(file).equals(shipped); } catch { ok = false; }
    if (!ok) {
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, shipped, { mode: 0o500 });
      fs.renameSync(tmp, file);
      if (!fs.readFileSync(file).equals(shipped)) throw new Error(`native module "${name}" does not match the copy in this executable`);
    }
    const mod = { exports: {} };
    process.dlopen(mod, file);
    natives.set(name, mod.exports);
    return mod.exports;
  }

  // A stand-in for a plain namespace object, loaded on first use (a Proxy of {}
  // cannot be called or constructed, so only for modules used as namespaces).
  function lazy(load) {
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

  // node-netlink requires its addon when its module is evaluated, i.e. in the
  // snapshot builder: hand out a stand-in that loads it at run time.
  const native = (name) => (natives.has(name) ? natives.get(name) : lazy(() => loadNative(name)));
  const builtin = (name) => lazy(() => require(name));

  // Data files bundled libraries read from disk, unpacked on first use into the
  // private directory, one folder per content hash (ncc's `__nccwpck_require__.ab`
  // is made a getter that calls this).
  function assetBase() {
    if (assetBase.dir) return assetBase.dir;
    const fs = require('fs'), path = require('path');
    const names = Object.keys(BUILD.data).sort();
    const dir = path.join(privateDir(), `assets-${BUILD.dataSha.slice(0, 32)}`);
    if (!fs.existsSync(path.join(dir, '.complete'))) {
      const tmp = `${dir}.${process.pid}.tmp`;
      fs.rmSync(tmp, { recursive: true, force: true });
      for (const n of names) {
        const file = path.join(tmp, n);
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        fs.writeFileSync(file, asset(`data/${n}`), { mode: 0o400 });
      }
      fs.writeFileSync(path.join(tmp, '.complete'), '');
      try { fs.renameSync(tmp, dir); } catch (err) {
        // Another process unpacked the same content first.
        fs.rmSync(tmp, { recursive: true, force: true });
        if (!fs.existsSync(path.join(dir, '.complete'))) throw err;
      }
    }
    assetBase.dir = dir + path.sep;
    return assetBase.dir;
  }

  const programs = new Map();
  let collecting;
  // startMain (lib/util/main.ts) hands its start here: recorded while a program's main is imported for the
  // release, run at once otherwise (e.g. runPlugin inside vxlan-overlay's start).
  globalThis[COLLECTOR] = (start, info) => {
    if (collecting) programs.set(collecting, { start, info });
    else start();
  };

  function collect(name, importMain) {
    collecting = name;
    try { importMain(); } finally { collecting = undefined; }
    if (!programs.get(name)?.start) throw new Error(`release: ${name}'s main did not hand its start to startMain (lib/util/main.ts)`);
  }

  /** The bundle calls this once per program: importing its main (in the snapshot builder) records its start. */
  function add(name, importMain) {
    collect(name, importMain);
  }

  /**
   * A program whose code is an on-demand bundle: imported only when it is the one started. Its info (MainInfo,
   * lib/util/main.ts) comes from a small module of its own, in the snapshot: `--version` answers without compiling it.
   */
  function addOnDemand(name, info) {
    programs.set(name, { onDemand: true, info });
  }

  // On-demand bundles (scripts/build.js ON_DEMAND, and programs added with addOnDemand): SEA assets, compiled on first use.
  const bundles = new Map();
  function onDemand(name) {
    if (bundles.has(name)) return bundles.get(name);
    const vm = require('vm');
    const source = asset(`bundles/${name}.js`).toString('utf8');
    const mod = { exports: {} };
    new vm.Script(source, { filename: `${EXECUTABLE}/${name}.js` }).runInThisContext()(mod, mod.exports, require, __cniRelease, process.execPath, require('path').dirname(process.execPath));
    bundles.set(name, mod.exports);
    return mod.exports;
  }

  function versionLine(name) {
    const versions = programs.get(name).info.cniVersions;
    return `${name} (node-cni-plugins) v${BUILD.version}, commit ${BUILD.commit}, Node ${process.version}`
      + (versions ? `; CNI spec versions ${versions.join(', ')}` : '');
  }

  function fail(message) {
    process.stderr.write(`${EXECUTABLE}: ${message}\n`);
    if (process.env.CNI_COMMAND) {
      // A runtime reads errors from stdout: one CNI error object.
      const newest = [...programs.values()].map((p) => p.info?.cniVersions?.at(-1)).find(Boolean);
      process.stdout.write(`${JSON.stringify({ cniVersion: newest, code: 999, msg: 'unknown program name', details: message })}\n`);
    }
    process.exitCode = 1;
  }

  function dispatch() {
    const path = require('path');
    let name = path.basename(process.argv0);
    const names = [...programs.keys()].sort();
    if (name === EXECUTABLE) {
      // `node-cni-plugins <program> [args]`, like busybox: shift the program name into argv0's place.
      const wanted = process.argv[2];
      if (wanted === '--version') {
        process.stdout.write(`${names.map(versionLine).join('\n')}\n`);
        return;
      }
      if (!programs.has(wanted)) {
        fail(`${wanted === undefined ? 'name a program' : `no program named "${wanted}"`}: run it as one of ${names.join(', ')}, through a link of that name or as "${EXECUTABLE} <program>"`);
        return;
      }
      process.argv.splice(1, 1);
      name = wanted;
    }
    if (!programs.has(name)) {
      fail(`no program named "${name}" in this executable (started as "${process.argv0}"): link it as one of ${names.join(', ')}`);
      return;
    }
    if (process.argv.length === 3 && process.argv[2] === '--version') {
      process.stdout.write(`${versionLine(name)}\n`);
      return;
    }
    if (programs.get(name).onDemand) collect(name, () => onDemand(name));
    programs.get(name).start();
  }

  /** 32-bit FNV-1a of a string's UTF-16 code units, as 8 hex digits (as scripts/release/profile-hot-functions.sh). */
  function fnv1a(text) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    return h.toString(16).padStart(8, '0');
  }

  // Build time only: the functions the common calls run get their bytecode now, so that the snapshot carries it
  // and no call compiles them from source (a third of a bridge ADD did; docs/benchmarks/startup.md). They are
  // compiled, never called: no code of ours runs, so no module state (cache, memo, handle) can be filled here and
  // frozen into every start. Found from every module's exports, through data properties and prototypes, which
  // reaches our exported functions and classes' methods and the Node built-ins our modules hold (fs, path,
  // Buffer...); those named in the profile (scripts/release/hot-functions.txt) are compiled.
  function compileHotFunctions(list) {
    const v8 = require('v8');
    v8.setFlagsFromString('--allow-natives-syntax');
    /* eslint-disable no-new-func -- V8's own entries, only in the snapshot builder */
    const fullGc = new Function('%CollectGarbage(0);');
    const compile = new Function('f', '%CompileLazy(f);'); // compiles f, does not call it
    /* eslint-enable no-new-func */
    let hot = findHotFunctions(list);
    const count = hot.length;
    // A full GC under the builder's --stress-flush-code drops the bytecode of everything that ran (the modules'
    // top levels, the search); then flushing stops and only the hot functions are compiled. Here, at the end of
    // the bundle: compiled in a serialize callback instead, cnictl crashed at run time (SIGSEGV). (Asking the
    // inspector for closures' [[Scopes]] would reach module-private helpers too, but leaves 700 KB of debugger
    // data in the snapshot: VERSION +12 M instructions.)
    fullGc();
    v8.setFlagsFromString('--no-stress-flush-code');
    v8.setFlagsFromString('--no-flush-bytecode');
    for (const f of hot) compile(f);
    hot = undefined;
    v8.setFlagsFromString('--no-allow-natives-syntax'); // (on until here: V8 parses the bodies above when called)
    return count;
  }

  function findHotFunctions(list) {
    const util = require('util');
    // Ours by name and the hash of the end of its source (minified code has many functions of one name); Node's
    // by name.
    const ours = new Map(), node = new Set();
    for (const line of list) {
      const [kind, ...rest] = line.split(' ');
      if (kind === 'node') { node.add(rest.join(' ')); continue; }
      const hash = rest.pop(), length = Number(rest.pop()), name = rest.join(' ');
      if (!ours.has(name)) ours.set(name, []);
      ours.get(name).push({ length, hash });
    }
    const ownSource = require('fs').readFileSync(__filename, 'utf8');
    const seen = new WeakSet(), queue = [], found = [];
    const visit = (v) => {
      if (((typeof v === 'object' && v !== null) || typeof v === 'function') && !seen.has(v)) {
        seen.add(v);
        // A lazy stand-in (scripts/build.js LAZY_BUILTINS) would load its module at the first look.
        if (!util.types.isProxy(v)) queue.push(v);
      }
    };
    for (const p of programs.values()) visit(p);
    for (const e of exportsOfModules) visit(e);
    while (queue.length) {
      const v = queue.shift();
      const source = typeof v === 'function' ? Function.prototype.toString.call(v) : '';
      // (C++ and bound functions have no bytecode.)
      if (typeof v === 'function' && (ours.has(v.name) || node.has(v.name)) && !source.endsWith('{ [native code] }')) {
        // Ours: its source is part of this script's.
        const wanted = ownSource.includes(source) ? ours.get(v.name) ?? [] : undefined;
        if (wanted ? wanted.some((w) => source.length >= w.length && fnv1a(source.slice(source.length - w.length)) === w.hash) : node.has(v.name)) found.push(v);
      }
      for (const k of Reflect.ownKeys(v)) {
        // V8 makes a function's prototype object when it is first read: only classes and constructors have one.
        if (k === 'prototype' && typeof v === 'function' && !/^class\b|^(function )?[A-Z]/.test(source)) continue;
        const d = Reflect.getOwnPropertyDescriptor(v, k);
        if (d && 'value' in d) visit(d.value);
        else if (d) { visit(d.get); visit(d.set); } // a getter is looked at, not called
      }
      visit(Object.getPrototypeOf(v));
    }
    return found;
  }

  /** After the bundle has added every program: run now, or after deserialization when building the snapshot. */
  function ready() {
    const v8 = require('v8');
    if (v8.startupSnapshot?.isBuildingSnapshot()) {
      const hot = /*__HOT_FUNCTIONS__*/ [];
      if (hot.length) process.stderr.write(`release: ${compileHotFunctions(hot)} hot functions compiled\n`);
      exportsOfModules = undefined;
      v8.startupSnapshot.addDeserializeCallback(forgetNodeEnvironment);
      v8.startupSnapshot.setDeserializeMainFunction(dispatch);
    } else {
      forgetNodeEnvironment();
      dispatch();
    }
  }

  // Every module's exports, while the snapshot is built (the roots of findHotFunctions); dropped before the
  // snapshot is taken, so that a module first loaded at run time is not recorded.
  let exportsOfModules = [];
  const loaded = (exports) => { exportsOfModules?.push(exports); };

  return { native, builtin, assetBase, add, addOnDemand, onDemand, ready, loaded };
})();
