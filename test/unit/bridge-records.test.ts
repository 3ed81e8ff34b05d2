// lib/bridge/records: the per-attachment files both bridge and vxlan-overlay keep for DEL and GC.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RecordDir, type AttachmentRecord } from '../../lib/bridge/records';

interface Rec extends AttachmentRecord { subnet: string }

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'brrec-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const rec = (containerId: string, ifname = 'eth0'): Rec => ({
  network: 'n1', containerId, ifname, hostVeth: 'veth01234567', addresses: ['10.1.0.5/24'], masq: [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }], subnet: '10.1.0.0/24',
});

describe('RecordDir', () => {
  it('writes one private file per attachment and reads it back with the plugin\'s own fields', () => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'net', 'attachments'));
    dir.write(rec('c1'));
    const file = path.join(tmp, 'net', 'attachments', 'c1.eth0.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(dir.read('c1', 'eth0')).toEqual(rec('c1'));
    expect(dir.read('c1', 'eth1')).toBeUndefined();
    expect(fs.readdirSync(path.dirname(file))).toEqual(['c1.eth0.json']); // no temporary file left
  });

  it('lists every record, skipping torn and foreign files; remove is idempotent', () => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'n'));
    expect(dir.list()).toEqual([]); // no directory yet
    dir.write(rec('c1'));
    dir.write(rec('c2', 'net1'));
    fs.writeFileSync(path.join(tmp, 'n', 'c3.eth0.json'), '{"network":');
    fs.writeFileSync(path.join(tmp, 'n', 'notes.txt'), 'x');
    expect(dir.list().map((r) => `${r.containerId}/${r.ifname}`).sort()).toEqual(['c1/eth0', 'c2/net1']);
    dir.remove('c1', 'eth0');
    dir.remove('c1', 'eth0');
    expect(dir.list().map((r) => r.containerId)).toEqual(['c2']);
  });
});
