// A storm of concurrent ADD/DEL on one network (issue #15): 16 containers
// attach (bridge with ipMasq and isolation, then portmap) and detach again
// and again for 30 s (and at least 4 waves), 16 ADDs and DELs at a time, in
// waves that cross 0 <-> 1 attachments: every other wave starts only when
// the previous one is completely gone (then the network must have been torn
// down: checked), the others start as soon as the previous wave's containers
// are all leaving, so their ADDs race its last DELs and its teardown. The network's
// structure is torn down by its last attachment and built again by the next
// one; at every moment each live container (its ADD returned, its DEL not
// started) must have working masquerade (the outside sees the host's
// address) and a working port mapping (the outside reaches the container
// through the host). At the end nothing of the network is left but its bridge.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { cniEnv } from '../helpers/cni';

const WORKERS = 16;
const STORM_MS = 30_000;
const OUTSIDE = '10.250.0.2';
const HOST = '10.250.0.1';

jest.setTimeout(STORM_MS + 240_000);
beforeAll(() => ensureBuilt('bridge', 'portmap'), 600000);

interface Run { status: number | null; out: string; json?: any }

function run(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv, timeoutMs = 60000): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let stdout = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (d) => { stdout += d; out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (status) => {
      clearTimeout(timer);
      let json;
      try { json = stdout ? JSON.parse(stdout) : undefined; } catch { /* not JSON */ }
      resolve({ status, out, json });
    });
    p.stdin.on('error', () => undefined); // a probe (curl) may exit before reading its empty stdin
    p.stdin.end(input ?? '');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('16-way ADD/DEL storm on one network (e2e)', () => {
  const sb = new Sandbox('lfs');
  const daemons: ChildProcess[] = [];
  afterAll(() => {
    for (const d of daemons) { try { d.kill('SIGKILL'); } catch { /* gone */ } }
    sb.cleanup();
  });

  it('every live container keeps masquerade and its published port while the network is torn down and rebuilt around it; nothing is left', async () => {
    const host = sb.netns('h');
    const outside = sb.netns('o');
    const state = sb.tmpdir('state');
    const ipam = sb.tmpdir('ipam');
    const pmData = sb.tmpdir('pm');
    sh('ip', ['-n', host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', outside]);
    sh('ip', ['-n', host, 'addr', 'add', `${HOST}/30`, 'dev', 'up0']);
    sh('ip', ['-n', outside, 'addr', 'add', `${OUTSIDE}/30`, 'dev', 'dn0']);
    sh('ip', ['-n', host, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', outside, 'link', 'set', 'dn0', 'up']);
    // The outside answers with the address it sees: the host's when masqueraded (it has no route to the containers).
    daemons.push(spawn('ip', ['netns', 'exec', outside, process.execPath, '-e',
      `require('net').createServer((s)=>{s.end(s.remoteAddress.replace(/^::ffff:/,''))}).listen(9000,'${OUTSIDE}')`], { stdio: 'ignore' }));
    const ctrs = Array.from({ length: WORKERS }, (_, i) => {
      const ns = sb.netns(`c${i}`);
      const www = sb.tmpdir(`www${i}`);
      fs.writeFileSync(path.join(www, 'index.html'), `c${i}\n`);
      daemons.push(spawn('ip', ['netns', 'exec', ns, '/bin/busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' }));
      return { i, ns, id: `${sb.tag}-c${i}`, port: 8100 + i, live: 0, result: undefined as any };
    });

    const net = `${sb.tag}n`;
    const bridgeConf = {
      cniVersion: '1.1.0', name: net, type: 'bridge', bridge: 'lfsbr0', isGateway: true, isDefaultGateway: true, ipMasq: true, isolation: true,
      hairpinMode: true, stateDir: state, ipam: { type: 'host-local', dataDir: ipam, subnet: '10.251.9.0/24' },
    };
    const portmapConf = (prevResult: unknown, hostPort: number) => ({
      cniVersion: '1.1.0', name: net, type: 'portmap', dataDir: pmData, prevResult, runtimeConfig: { portMappings: [{ hostPort, containerPort: 80 }] },
    });
    const plugin = (bin: string, cmd: string, conf: unknown, c: { id: string; ns: string }) => run('ip', ['netns', 'exec', host, path.join(DIST_BIN, bin)], JSON.stringify(conf),
      cniEnv({ command: cmd, containerId: c.id, netns: sb.nsPath(c.ns) }));
    const ruleset = () => shTry('ip', ['netns', 'exec', host, 'nft', 'list', 'ruleset']).stdout;
    const tree = (d: string) => fs.readdirSync(d);
    const before = { ruleset: ruleset(), state: tree(state), pm: tree(pmData) };
    expect(before.ruleset).toBe('');

    const failures: string[] = [];
    let probes = 0;
    let epoch = 0;

    /** Masquerade and the published port of a live container; a failure counts only if it stayed live throughout. */
    async function probe(c: typeof ctrs[number], when: string): Promise<void> {
      const live = c.live;
      if (!live) return;
      const [masq, port] = await Promise.all([
        run('ip', ['netns', 'exec', c.ns, 'curl', '-s', '--http0.9', '--max-time', '5', `http://${OUTSIDE}:9000/`]),
        run('ip', ['netns', 'exec', outside, 'curl', '-s', '--max-time', '5', `http://${HOST}:${c.port}/`]),
      ]);
      if (c.live !== live) return; // its DEL started meanwhile: not a live container's failure
      probes++;
      if (masq.out.trim() !== HOST) failures.push(`${when} c${c.i}: masquerade: the outside saw "${masq.out.trim()}"`);
      if (port.out.trim() !== `c${c.i}`) failures.push(`${when} c${c.i}: port ${c.port}: got "${port.out.trim()}"`);
    }

    const deadline = Date.now() + STORM_MS;
    let stop = false;
    /** One cycle of one container: ADD (bridge, portmap), probes while live, DEL (portmap, bridge). */
    const cycle = async (c: typeof ctrs[number], left: () => void): Promise<void> => {
      await sleep(Math.random() * 500);
      const add = await plugin('bridge', 'ADD', bridgeConf, c);
      if (add.status !== 0) failures.push(`c${c.i}: bridge ADD: ${add.out}`);
      else {
        const pm = await plugin('portmap', 'ADD', portmapConf(add.json, c.port), c);
        if (pm.status !== 0) failures.push(`c${c.i}: portmap ADD: ${pm.out}`);
        c.live = ++epoch;
        await probe(c, 'after ADD');
        await sleep(Math.random() * 1000);
        await probe(c, 'before DEL');
        c.live = 0;
      }
      left();
      const pdel = await plugin('portmap', 'DEL', { cniVersion: '1.1.0', name: net, type: 'portmap', dataDir: pmData }, c);
      const bdel = await plugin('bridge', 'DEL', bridgeConf, c);
      if (pdel.status !== 0 || bdel.status !== 0) failures.push(`c${c.i}: DEL: ${pdel.out} ${bdel.out}`);
    };
    // A container's next cycle waits for its own previous DEL; the others' DELs it races.
    const previous = ctrs.map(() => Promise.resolve());
    const wave = () => {
      let leaving = 0;
      let allLeft!: () => void;
      const left = new Promise<void>((r) => { allLeft = r; });
      const cycles = ctrs.map((c, i) => (previous[i] = previous[i].then(() => cycle(c, () => { if (++leaving === ctrs.length) allLeft(); }))));
      return { left, done: Promise.all(cycles) };
    };
    // Besides each container's own probes, one prober keeps probing whoever is live.
    const prober = (async () => {
      while (!stop) {
        const live = ctrs.filter((c) => c.live);
        if (live.length) await probe(live[Math.floor(Math.random() * live.length)], 'meanwhile');
        else await sleep(50);
      }
    })();
    let quiet = 0;
    const waves = [wave()];
    for (let n = 1; Date.now() < deadline || quiet < 2; n++) {
      const prev = waves[waves.length - 1];
      if (n % 2 === 0) {
        await Promise.all(waves.map((w) => w.done));
        // Nobody attached: the last one out took the network's structure along.
        expect({ ruleset: ruleset(), records: fs.existsSync(path.join(state, net)), pm: fs.existsSync(path.join(pmData, net)) }).toEqual({ ruleset: '', records: false, pm: false });
        quiet++;
      } else {
        await prev.left; // the next wave's ADDs race this one's DELs and its teardown
      }
      waves.push(wave());
    }
    await Promise.all(waves.map((w) => w.done));
    stop = true;
    await prober;

    expect(failures).toEqual([]);
    expect(probes).toBeGreaterThan(WORKERS);
    expect(quiet).toBeGreaterThanOrEqual(2); // torn down and built again, twice at least
    expect({ ruleset: ruleset(), state: tree(state), pm: tree(pmData) }).toEqual(before);
    expect(fs.readdirSync(path.join(ipam, net)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
  });
});
