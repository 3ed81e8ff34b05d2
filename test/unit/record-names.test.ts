// Per-attachment records of portmap, the firewall and macvlan's trunk users:
// named by the attachment key (a container ID of any length fits NAME_MAX),
// and the names older releases wrote are still found and removed (a DEL after
// an upgrade); tuning keeps the reference's names where they fit. Real files
// in a temp dir.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createHash } from 'crypto';
import { FirewallState, type FirewallRecord } from '../../plugins/firewall/state';
import { TrunkState } from '../../plugins/macvlan/trunk-state';
import { userRecordName } from '../../plugins/macvlan/trunk';
import { backupFile, listBackups, readBackup, removeBackup, writeBackup } from '../../plugins/tuning/backup';
import { listRecordedAttachments, networkState, readRecord, removeRecord, writeRecord, type AttachmentRecord } from '../../plugins/portmap/store';

const LONG_ID = 'c'.repeat(1000);

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyrec-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const filesIn = (d: string): string[] => (fs.existsSync(d) ? fs.readdirSync(d).sort() : []);

describe('portmap records', () => {
  const entries: AttachmentRecord['entries'] = [];

  it('a 1000-character container ID: written, read, listed, removed', () => {
    writeRecord(dir, { network: 'pm', containerID: LONG_ID, ifname: 'eth0', entries });
    expect(readRecord(dir, 'pm', LONG_ID, 'eth0')).toMatchObject({ containerID: LONG_ID, ifname: 'eth0' });
    expect(readRecord(dir, 'pm', LONG_ID, 'eth1')).toBeUndefined();
    expect(listRecordedAttachments(dir, 'pm')).toEqual([{ containerID: LONG_ID, ifname: 'eth0' }]);
    expect(networkState(dir, 'pm').hasMembers()).toBe(true);
    removeRecord(dir, 'pm', LONG_ID, 'eth0');
    expect(filesIn(path.join(dir, 'pm'))).toEqual([]);
  });

  it('reads, lists and removes a record an older release named <cid>:<ifname>.json', () => {
    fs.mkdirSync(path.join(dir, 'pm'));
    const rec: AttachmentRecord = { version: 1, network: 'pm', containerID: 'old', ifname: 'eth0', entries };
    fs.writeFileSync(path.join(dir, 'pm', 'old:eth0.json'), JSON.stringify(rec));
    expect(readRecord(dir, 'pm', 'old', 'eth0')).toEqual(rec);
    expect(listRecordedAttachments(dir, 'pm')).toEqual([{ containerID: 'old', ifname: 'eth0' }]);
    removeRecord(dir, 'pm', 'old', 'eth0');
    expect(filesIn(path.join(dir, 'pm'))).toEqual([]);
  });

  it('a record is only taken for the attachment it holds', () => {
    writeRecord(dir, { network: 'pm', containerID: 'a', ifname: 'eth0', entries });
    const [name] = filesIn(path.join(dir, 'pm'));
    fs.renameSync(path.join(dir, 'pm', name), path.join(dir, 'pm', 'b:eth0.json'));
    expect(readRecord(dir, 'pm', 'b', 'eth0')).toBeUndefined();
  });
});

describe('firewall records', () => {
  const rec = (containerID: string, network = 'fw'): FirewallRecord => ({ network, containerID, ifname: 'eth0', addresses: ['10.1.2.3'], policy: 'open' });

  it('a 1000-character container ID: written, read, listed per network, removed', () => {
    const state = new FirewallState(dir, 1);
    fs.mkdirSync(state.dir, { recursive: true }); // an ADD's whileAttaching made it
    state.write(rec(LONG_ID));
    state.write(rec('other', 'fw2'));
    expect(state.read('fw', LONG_ID, 'eth0')).toEqual(rec(LONG_ID));
    expect(state.read('fw2', LONG_ID, 'eth0')).toBeUndefined();
    expect(state.list('fw')).toEqual([rec(LONG_ID)]);
    state.remove('fw', LONG_ID, 'eth0');
    state.remove('fw2', 'other', 'eth0');
    expect(filesIn(state.dir)).toEqual([]);
  });

  it('reads, lists and removes a record an older release named <network tag>.<cid>.<ifname>.json', () => {
    const state = new FirewallState(dir, 1);
    fs.mkdirSync(state.dir, { recursive: true });
    const tag = createHash('sha256').update('fw').digest('hex').slice(0, 12);
    fs.writeFileSync(path.join(state.dir, `${tag}.old.eth0.json`), JSON.stringify(rec('old')));
    expect(state.read('fw', 'old', 'eth0')).toEqual(rec('old'));
    expect(state.list('fw')).toEqual([rec('old')]);
    state.remove('fw', 'old', 'eth0');
    expect(filesIn(state.dir)).toEqual([]);
  });
});

describe('macvlan trunk users', () => {
  const subif = 'eth9.10';
  const usersDir = (state: TrunkState) => path.join(state.root, subif, 'users');

  it('a 1000-character container ID: added, counted, removed', () => {
    const state = new TrunkState(dir);
    const long = userRecordName({ network: 'mv', containerId: LONG_ID, ifname: 'eth0' });
    const short = userRecordName({ network: 'mv', containerId: 'b', ifname: 'eth0' });
    state.addUser(subif, long);
    state.addUser(subif, short);
    expect(state.users(subif)).toEqual([long, short].sort());
    expect(state.removeUser(subif, long)).toBe(true);
    expect(state.removeUser(subif, long)).toBe(false);
    expect(state.users(subif)).toEqual([short]);
  });

  it('counts and removes a user file an older release named by the record itself', () => {
    const state = new TrunkState(dir);
    const old = userRecordName({ network: 'mv', containerId: 'old', ifname: 'eth0' });
    fs.mkdirSync(usersDir(state), { recursive: true });
    fs.writeFileSync(path.join(usersDir(state), old), '');
    expect(state.users(subif)).toEqual([old]);
    expect(state.removeUser(subif, old)).toBe(true);
    expect(filesIn(usersDir(state))).toEqual([]);
  });
});

describe('tuning backups', () => {
  const rec = (containerID: string) => ({ network: 'tn', containerID, ifname: 'eth0', mtu: 1500 });

  it('keep the reference\'s name <containerID>_<ifname>.json, so either plugin restores what the other saved', () => {
    writeBackup(dir, 'abc', 'eth0', rec('abc'));
    expect(filesIn(dir)).toEqual(['abc_eth0.json']);
    expect(readBackup(dir, 'abc', 'eth0')).toEqual(rec('abc'));
    expect(listBackups(dir, 'tn')).toEqual([{ containerID: 'abc', ifname: 'eth0' }]);
    removeBackup(dir, 'abc', 'eth0');
    expect(filesIn(dir)).toEqual([]);
  });

  it('a 1000-character container ID: a hashed name, written, read, listed, removed', () => {
    writeBackup(dir, LONG_ID, 'eth0', rec(LONG_ID));
    expect(Buffer.byteLength(path.basename(backupFile(dir, LONG_ID, 'eth0')))).toBeLessThan(64);
    expect(readBackup(dir, LONG_ID, 'eth0')).toEqual(rec(LONG_ID));
    expect(listBackups(dir, 'tn')).toEqual([{ containerID: LONG_ID, ifname: 'eth0' }]);
    removeBackup(dir, LONG_ID, 'eth0');
    expect(filesIn(dir)).toEqual([]);
  });
});
