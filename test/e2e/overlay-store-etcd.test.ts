// etcd-only behaviour: the test helper itself (in a namespace, cleanup on a
// failed start) and how the etcd backend fails when the cluster goes away.
import * as fs from 'fs';
import * as os from 'os';
import { EtcdStore } from '../../plugins/vxlan-overlay/store/etcd-store';
import { EtcdServer, freePort, startEtcd } from '../helpers/etcd';
import { Sandbox } from '../helpers/sandbox';

const etcdDirs = (): string[] => fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('cni-test-etcd-'));
const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

describe('etcd test helper and backend failures', () => {
  const sb = new Sandbox('ovse');
  const servers: EtcdServer[] = [];
  const stores: EtcdStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const s of servers.splice(0)) await s.stop();
    sb.cleanup();
  });

  it('runs etcd inside a network namespace and removes everything on stop', async () => {
    const ns = sb.netns('etcd');
    const server = await startEtcd({ netns: ns });
    servers.push(server);
    const put = sb.inNs(ns, '/usr/bin/etcdctl', ['--endpoints', server.endpoint, 'put', '/probe', 'in-netns'], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10000 });
    expect(put.stderr).toBe('');
    const got = sb.inNs(ns, '/usr/bin/etcdctl', ['--endpoints', server.endpoint, 'get', '--print-value-only', '/probe'], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10000 });
    expect(got.stdout.trim()).toBe('in-netns');
    // Not reachable from the host namespace: its 127.0.0.1 is the namespace's own.
    const store = new EtcdStore({ endpoints: [server.endpoint], callTimeoutMs: 1000, dialTimeoutMs: 500 });
    stores.push(store);
    await expect(store.get('/probe')).rejects.toThrow();

    await server.stop();
    servers.splice(0);
    expect(alive(server.pid)).toBe(false);
    expect(fs.existsSync(server.dataDir)).toBe(false);
  }, 30000);

  it('cleans up its data dir when etcd cannot start', async () => {
    const before = etcdDirs();
    // 192.0.2.1 (TEST-NET-1) is on no interface here, so etcd cannot bind it.
    await expect(startEtcd({ listenIp: '192.0.2.1', startTimeoutMs: 8000 })).rejects.toThrow(/etcd exited|not get ready/);
    expect(etcdDirs()).toEqual(before);
  }, 30000);

  it('fails calls on an unreachable cluster instead of hanging', async () => {
    const store = new EtcdStore({ endpoints: [`http://127.0.0.1:${await freePort()}`], callTimeoutMs: 2000, dialTimeoutMs: 1000 });
    stores.push(store);
    await expect(store.get('/x')).rejects.toThrow();
    await expect(store.grantLease(5)).rejects.toThrow();
  });

  it('ends a watch with onError when etcd goes away, so the agent re-lists', async () => {
    const server = await startEtcd();
    servers.push(server);
    const store = new EtcdStore({ endpoints: [server.endpoint] });
    stores.push(store);
    const rev = await store.put('/w/a', '1');
    const events: string[] = [];
    let failed: Error | undefined;
    const handle = store.watch('/w/', rev, { onEvents: (e) => events.push(...e.map((x) => x.value)), onCompacted: () => undefined, onError: (err) => (failed = err) });
    const deadline = Date.now() + 8000;
    while (events.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual(['1']);
    await server.stop();
    servers.splice(0);
    while (!failed && Date.now() < deadline + 8000) await new Promise((r) => setTimeout(r, 100));
    handle.cancel();
    expect(failed?.message).toMatch(/watch of \/w\/ lost its etcd stream/);
  }, 30000);
});
