// Every file in conf-examples/ is a config a person will copy: each one must
// load like a runtime loads it (conflist shape) and pass the parser of every
// plugin it names, with the plugins' own config code, at the version an old
// runtime (libcni 1.1: "cniVersion") and a new one (libcni >= 1.2 and our
// runner: the highest of "cniVersions") send (conf-examples/README.md).
import * as fs from 'fs';
import * as path from 'path';
import { parseNetworkConfig } from '../../lib/cni/conflist';
import type { NetConf } from '../../lib/cni/types';
import { parseBridgeConfig } from '../../plugins/bridge/config';
import { parseMacvlanConfig } from '../../plugins/macvlan/config';
import { parsePortmapConfig } from '../../plugins/portmap/config';
import { parseOverlayConfig } from '../../plugins/vxlan-overlay/config';
import { parseHostLocalConfig } from '../../ipam/host-local/config';
import { parseBandwidthConfig } from '../../plugins/bandwidth/config';
import { parseFirewallConfig } from '../../plugins/firewall/config';
import { parseTuningConfig } from '../../plugins/tuning/config';
import { versionAtLeast } from '../../lib/cni/version';

const DIR = path.resolve(__dirname, '..', '..', 'conf-examples');
const conflists = fs.readdirSync(DIR).filter((f) => f.endsWith('.conflist')).sort();

const parsers: Record<string, (conf: NetConf) => unknown> = {
  bridge: (c) => parseBridgeConfig(c),
  macvlan: (c) => parseMacvlanConfig(c),
  portmap: (c) => parsePortmapConfig(c),
  'vxlan-overlay': (c) => parseOverlayConfig(c),
  loopback: () => ({}), // no fields of its own
  firewall: (c) => parseFirewallConfig(c),
  tuning: (c) => parseTuningConfig(c, { ifname: 'eth0' }),
  bandwidth: (c) => parseBandwidthConfig(c),
};

describe('conf-examples', () => {
  it('has a config for every Docker mode of the README', () => {
    expect(conflists).toEqual(expect.arrayContaining([
      '10-docker0.conflist', '20-none.conflist', '30-user-defined.conflist', '31-user-defined-internal.conflist', '32-user-defined-icc-off.conflist',
      '40-macvlan.conflist', '41-macvlan-trunk.conflist', '50-overlay-file.conflist', '51-overlay-etcd.conflist',
      '60-k8s-bridge.conflist', '61-k8s-overlay-etcd.conflist',
    ]));
    expect(fs.existsSync(path.join(DIR, 'host-and-container-modes.md'))).toBe(true);
  });

  it.each(conflists)('%s: "cniVersion" 1.0.0 for libcni 1.1 runtimes, "cniVersions" up to 1.1.0 for newer ones', (file) => {
    const bytes = fs.readFileSync(path.join(DIR, file));
    const list = JSON.parse(bytes.toString('utf8'));
    expect([list.cniVersion, list.cniVersions]).toEqual(['1.0.0', ['1.0.0', '1.1.0']]);
    expect(parseNetworkConfig(bytes, file).cniVersion).toBe('1.1.0');
  });

  it.each(conflists.flatMap((f) => [[f, '1.0.0'], [f, '1.1.0']]))('%s loads and every plugin in it accepts its entry at %s', (file, version) => {
    const list = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
    expect(typeof list.name).toBe('string');
    expect(Array.isArray(list.plugins) && list.plugins.length).toBeTruthy();
    for (const entry of list.plugins) {
      const conf = { ...entry, name: list.name, cniVersion: version } as NetConf;
      const parse = parsers[entry.type];
      expect(parse).toBeDefined();
      expect(() => parse(conf)).not.toThrow();
      if (entry.ipam?.type === 'host-local') expect(() => parseHostLocalConfig(conf)).not.toThrow();
    }
  });

  it('the parsers are not a formality: a broken entry is refused with code 7', () => {
    const list = JSON.parse(fs.readFileSync(path.join(DIR, '10-docker0.conflist'), 'utf8'));
    const broken = { ...list.plugins[0], name: list.name, cniVersion: list.cniVersion, hairpinMode: true, promiscMode: true };
    expect(() => parseBridgeConfig(broken)).toThrow(expect.objectContaining({ code: 7 }));
  });
});

// conf-examples/generated/: what runtimes write themselves (podman network create, nerdctl's
// default network, a Kubernetes-style chain), kept as they write it, own cniVersion included:
// each must work unchanged, so each loads and every plugin accepts its entry at that version.
const GENERATED = path.join(DIR, 'generated');
const generated = fs.readdirSync(GENERATED).filter((f) => f.endsWith('.conflist')).sort();
/** The lowest config version each chained plugin takes (the reference's minimums). */
const MIN_VERSION: Record<string, string> = { firewall: '0.4.0', bandwidth: '0.3.0', portmap: '0.3.0', tuning: '0.1.0' };

describe('conf-examples/generated (runtime-written shapes)', () => {
  it('has podman\'s, nerdctl\'s and a Kubernetes-style chain with portmap + bandwidth', () => {
    expect(generated).toEqual(['k8s-portmap-bandwidth.conflist', 'nerdctl-bridge.conflist', 'podman-network-create-isolate.conflist', 'podman-network-create.conflist']);
  });

  it.each(generated)('%s loads at its own version and every plugin in it accepts its entry', (file) => {
    const bytes = fs.readFileSync(path.join(GENERATED, file));
    const list = JSON.parse(bytes.toString('utf8'));
    expect(parseNetworkConfig(bytes, file).cniVersion).toBe(list.cniVersion);
    for (const entry of list.plugins) {
      const conf = { ...entry, name: list.name, cniVersion: list.cniVersion } as NetConf;
      expect([entry.type, parsers[entry.type]]).toEqual([entry.type, expect.any(Function)]);
      expect(() => parsers[entry.type](conf)).not.toThrow();
      if (MIN_VERSION[entry.type]) expect([entry.type, versionAtLeast(list.cniVersion, MIN_VERSION[entry.type])]).toEqual([entry.type, true]);
      if (entry.ipam?.type === 'host-local') expect(() => parseHostLocalConfig(conf)).not.toThrow();
    }
  });

  it('the chains are what the runtimes write: podman firewall+tuning, nerdctl same-bridge, kubelet\'s bandwidth capability', () => {
    const types = (f: string) => JSON.parse(fs.readFileSync(path.join(GENERATED, f), 'utf8')).plugins.map((p: { type: string }) => p.type);
    expect(types('podman-network-create.conflist')).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    expect(types('nerdctl-bridge.conflist')).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    expect(types('k8s-portmap-bandwidth.conflist')).toEqual(['bridge', 'portmap', 'bandwidth']);
    const nerdctl = JSON.parse(fs.readFileSync(path.join(GENERATED, 'nerdctl-bridge.conflist'), 'utf8'));
    expect(parseFirewallConfig({ ...nerdctl.plugins[2], name: nerdctl.name, cniVersion: nerdctl.cniVersion }).ingressPolicy).toBe('same-bridge');
  });
});
