// lib/bridge/records: the per-attachment files both bridge and vxlan-overlay keep for DEL and GC.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RecordDir, type AttachmentRecord } from '../../lib/bridge/records';
import { attachmentKey } from '../../lib/util/attachment-key';

interface Rec extends AttachmentRecord { subnet: string }

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-brrec-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const rec = (containerId: string, ifname = 'eth0', network = 'n1'): Rec => ({
  network, containerId, ifname, hostVeth: 'veth01234567', addresses: ['10.1.0.5/24'], masq: [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }], subnet: '10.1.0.0/24',
});

describe('RecordDir', () => {
  it('writes one private file per attachment, named by the hash of (network, container, ifname), and reads it back', () => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'net', 'attachments'), 'n1');
    dir.write(rec('c1'));
    const file = path.join(tmp, 'net', 'attachments', `${attachmentKey({ network: 'n1', containerId: 'c1', ifname: 'eth0' })}.json`);
    expect(dir.fileOf('c1', 'eth0')).toBe(file);
    expect(path.basename(file)).toMatch(/^c1-[0-9a-f]{32}\.json$/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(dir.read('c1', 'eth0')).toEqual(rec('c1'));
    expect(dir.read('c1', 'eth1')).toBeUndefined();
    expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)]); // no temporary file left
  });

  it('lists every record, skipping torn and foreign files; remove is idempotent', () => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'n'), 'n1');
    expect(dir.list()).toEqual([]); // no directory yet
    dir.write(rec('c1'));
    dir.write(rec('c2', 'net1'));
    fs.writeFileSync(path.join(tmp, 'n', 'c3.eth0.json'), '{"network":');
    fs.writeFileSync(path.join(tmp, 'n', 'c4.eth0.json'), JSON.stringify(rec('c4', 'eth0', 'other-net')));
    fs.writeFileSync(path.join(tmp, 'n', 'notes.txt'), 'x');
    expect(dir.list().map((r) => `${r.containerId}/${r.ifname}`).sort()).toEqual(['c1/eth0', 'c2/net1']);
    dir.remove('c1', 'eth0');
    dir.remove('c1', 'eth0');
    expect(dir.list().map((r) => r.containerId)).toEqual(['c2']);
  });

  // Issue #12 item 3: the old "<cid>.<ifname>.json" was one file for these two.
  it.each([
    [['a', 'e.x'], ['a.e', 'x']],
    [['a', 'b.c.d'], ['a.b.c', 'd']],
    [['x-y', 'z'], ['x', 'y-z']],
  ])('attachments %j and %j never share a record', ([c1, i1], [c2, i2]) => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'n'), 'n1');
    dir.write({ ...rec(c1, i1), hostVeth: 'vethfirst' });
    dir.write({ ...rec(c2, i2), hostVeth: 'vethsecond' });
    expect(dir.fileOf(c1, i1)).not.toBe(dir.fileOf(c2, i2));
    dir.remove(c1, i1); // DEL of the first
    expect(dir.read(c1, i1)).toBeUndefined();
    expect(dir.read(c2, i2)?.hostVeth).toBe('vethsecond'); // the second keeps its record
  });

  it('a 1000-character container ID works (the reference accepts it)', () => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'n'), 'n1');
    const id = 'c'.repeat(1000);
    dir.write(rec(id));
    expect(dir.read(id, 'eth0')?.containerId).toBe(id);
    expect(dir.list().map((r) => r.containerId)).toEqual([id]);
    dir.remove(id, 'eth0');
    expect(fs.readdirSync(path.join(tmp, 'n'))).toEqual([]);
  });

  it('reads, lists and removes a record an older release wrote as <cid>.<ifname>.json, only when the triple inside matches', () => {
    const dir = new RecordDir<Rec>(path.join(tmp, 'n'), 'n1');
    fs.mkdirSync(path.join(tmp, 'n'), { mode: 0o700 });
    // The collision of old: "a.e.x.json" holds the attachment (a.e, x); (a, e.x) must not take it.
    fs.writeFileSync(path.join(tmp, 'n', 'a.e.x.json'), JSON.stringify(rec('a.e', 'x')));
    expect(dir.read('a', 'e.x')).toBeUndefined();
    dir.remove('a', 'e.x');
    expect(fs.existsSync(path.join(tmp, 'n', 'a.e.x.json'))).toBe(true);
    expect(dir.read('a.e', 'x')?.containerId).toBe('a.e');
    expect(dir.list().map((r) => `${r.containerId}/${r.ifname}`)).toEqual(['a.e/x']);
    dir.remove('a.e', 'x');
    expect(fs.readdirSync(path.join(tmp, 'n'))).toEqual([]);
  });
});
