// The README's main job: `npm run demo` (scripts/demo.sh) runs every Docker
// mode of the project end to end, and leaves nothing behind.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { ROOT, sh } from '../helpers/sandbox';

jest.setTimeout(240000);
beforeAll(() => ensureBuilt('bridge', 'portmap', 'macvlan', 'vxlan-overlay', 'loopback', 'cnictl'), 300000);

it('runs every step, and nothing of it is left', () => {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'demo.sh')], { encoding: 'utf8', timeout: 180000 });
  const out = `${r.stdout}${r.stderr}`;
  expect({ status: r.status, tail: out.split('\n').slice(-15).join('\n') }).toEqual({ status: 0, tail: expect.stringContaining('namespaces of this demo left: 0') });
  for (const n of [3, 6, 7, 8, 9, 10, 11]) expect(out).toMatch(new RegExp(`== ${n}\\. `));
  expect(out).toMatch(/transfer back up from 10\.18\.0\.\d+ \(backend\)/);
  expect(out).toMatch(/cannot publish tcp port 8443/);
  const prefix = /demo(\d+)-host/.exec(out)![0].replace(/-host$/, '');
  expect(sh('ip', ['netns', 'list']).split('\n').filter((l) => l.startsWith(`${prefix}-`))).toEqual([]);
  expect(fs.readdirSync('/tmp').filter((f) => f.startsWith(`${prefix}.`))).toEqual([]);
  expect(fs.existsSync(`/etc/netns/${prefix}-app`)).toBe(false);
  // No process of it either (agents, servers: their command lines name the demo's temp dir).
  const procs = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try { return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(`/tmp/${prefix}.`); } catch { return false; }
  });
  expect(procs).toEqual([]);
});
