import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ensurePrivateDir } from '../../lib/util/fs';

describe('ensurePrivateDir', () => {
  let tmp: string;
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ufs-')); });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('makes the directory private and leaves missing parents searchable by others', () => {
    const dir = path.join(tmp, 'run', 'cni', 'bridge');
    const old = process.umask(0o022);
    try {
      ensurePrivateDir(dir);
      ensurePrivateDir(dir); // idempotent
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.dirname(dir)).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(tmp, 'run')).mode & 0o777).toBe(0o755);
  });
});
