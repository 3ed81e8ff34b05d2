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

  // Required while the snapshot is built: compiled then, not in every call that loads native code (0.26 ms).
  const sea = require('node:sea');
  // The asset's bytes where the executable is mapped, not a copy (read-only: only compared, written out, decoded).
  function asset(key) {
    return Buffer.from(sea.getRawAsset(key));
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
  // frozen into every start. Every function in the heap is looked at (module-private helpers and Node's own
  // start-up code too); those of the profile (scripts/release/hot-functions.txt) are compiled.
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
    // the bundle: compiled in a serialize callback instead, cnictl crashed at run time (SIGSEGV).
    fullGc();
    v8.setFlagsFromString('--no-stress-flush-code');
    v8.setFlagsFromString('--no-flush-bytecode');
    for (const f of hot) compile(f);
    hot = undefined;
    v8.setFlagsFromString('--no-allow-natives-syntax'); // (on until here: V8 parses the bodies above when called)
    return count;
  }

  // The profile's functions among all of the heap's: by name, the length of the source text V8 compiled (the end
  // of Function.prototype.toString) and its FNV-1a hash. A function changed since the profile is not found, and
  // compiled at run time as before. A short text many functions share (2658 getters `get() { return x }` of
  // Node's) is left out: compiling them all costs every start more than it saves the few that run.
  function findHotFunctions(list) {
    const MOST_OF_ONE_TEXT = 16;
    const wanted = new Map();
    for (const line of list) {
      const [, length, hash, ...name] = line.split(' ');
      const key = name.join(' ');
      if (!wanted.has(key)) wanted.set(key, []);
      wanted.get(key).push({ length: Number(length), hash, found: [] });
    }
    const isProxy = require('util').types.isProxy;
    for (const f of functionsInHeap()) {
      // (A lazy stand-in, scripts/build.js LAZY_BUILTINS, would load its module at the first look.)
      if (typeof f !== 'function' || isProxy(f)) continue;
      const entries = wanted.get(Reflect.getOwnPropertyDescriptor(f, 'name')?.value ?? '');
      if (!entries) continue;
      const source = Function.prototype.toString.call(f);
      if (source.endsWith('{ [native code] }')) continue; // (C++ and bound functions have no bytecode)
      // A class is its constructor, whose compiled text is the part after `constructor` inside the class's text.
      const starts = source.startsWith('class') ? constructorStarts(source) : [];
      entries.find((w) => (source.length >= w.length && fnv1a(source.slice(source.length - w.length)) === w.hash)
        || starts.some((at) => fnv1a(source.slice(at, at + w.length)) === w.hash))?.found.push(f);
    }
    return [...wanted.values()].flat().flatMap((w) => (w.found.length <= MOST_OF_ONE_TEXT ? w.found : []));
  }

  function constructorStarts(classSource) {
    const starts = [];
    for (let at = classSource.indexOf('constructor('); at >= 0; at = classSource.indexOf('constructor(', at + 1)) starts.push(at + 'constructor'.length);
    return starts;
  }

  // Every object whose prototype chain holds Function.prototype, from the inspector (Runtime.queryObjects): no walk
  // from the modules' exports reaches the helpers private to a module or Node's start-up code. The session ends
  // here, before the snapshot is taken; nothing uses the inspector at run time.
  function functionsInHeap() {
    const session = new (require('inspector').Session)();
    session.connect();
    const post = (method, params) => {
      let result, error;
      session.post(method, params, (e, r) => { error = e; result = r; }); // (answers synchronously)
      if (error) throw error;
      return result;
    };
    const hand = '__cniHeapFunctions';
    let all;
    globalThis[hand] = (array) => { all = array; };
    try {
      const group = { objectGroup: 'release-build' };
      const proto = post('Runtime.evaluate', { expression: 'Function.prototype', ...group }).result.objectId;
      const found = post('Runtime.queryObjects', { prototypeObjectId: proto, ...group }).objects.objectId;
      post('Runtime.callFunctionOn', { functionDeclaration: `function () { globalThis.${hand}(this); }`, objectId: found, ...group });
      post('Runtime.releaseObjectGroup', group);
    } finally {
      delete globalThis[hand];
      session.disconnect();
    }
    return Array.from(all);
  }

  /** After the bundle has added every program: run now, or after deserialization when building the snapshot. */
  function ready() {
    const v8 = require('v8');
    if (v8.startupSnapshot?.isBuildingSnapshot()) {
      const hot = /*__HOT_FUNCTIONS__*/ [];
      if (hot.length) process.stderr.write(`release: ${compileHotFunctions(hot)} hot functions compiled\n`);
      v8.startupSnapshot.addDeserializeCallback(forgetNodeEnvironment);
      v8.startupSnapshot.setDeserializeMainFunction(dispatch);
    } else {
      forgetNodeEnvironment();
      dispatch();
    }
  }

  return { native, builtin, assetBase, add, addOnDemand, onDemand, ready };
})();
