// Prepended to every dist/bin bundle by scripts/build.js. Native addons travel
// inside the file as base64; before loading one we write it (once) into a
// directory only this user (root, for a plugin) can write, and check its
// SHA-256 on every load, so nobody can swap the code we dlopen.
const __cniNative = (() => {
  const blobs = /*__NATIVE_BLOBS__*/ {};
  const loaded = new Map();
  function safeDir(fs, path, os) {
    const uid = process.geteuid ? process.geteuid() : 0;
    const base = process.env.CNI_NATIVE_DIR
      || (uid === 0 ? '/run/node-cni-plugins/native' : path.join(os.tmpdir(), `node-cni-plugins-${uid}`));
    fs.mkdirSync(base, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(base);
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
      throw new Error(`refusing to load native code from "${base}": it must be a directory owned by uid ${uid} and writable by no one else`);
    }
    return base;
  }
  return function load(name) {
    if (loaded.has(name)) return loaded.get(name);
    const blob = blobs[name];
    if (!blob) throw new Error(`native module "${name}" is not embedded in this executable`);
    const fs = require('fs'), path = require('path'), os = require('os'), crypto = require('crypto');
    const [sha, b64] = blob;
    const file = path.join(safeDir(fs, path, os), `${sha}.node`);
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
  };
})();
