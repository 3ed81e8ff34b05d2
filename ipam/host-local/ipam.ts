// The host-local IPAM: the allocator (allocator.ts) over the reservation
// store (store.ts), as the handlers of one IPAM for all our plugins. The
// interface plugins run `hostLocalIpam` in-process (each main.ts hands it to
// its plugin through ipam/index.ts); dist/bin/host-local runs the same
// handlers through the skel (plugin.ts), so a config may name "host-local"
// for our plugins and for the reference ones alike.
//
// Error codes: 7 for anything wrong in the config or the requested addresses;
// 11 ("try again later") when a set is exhausted or a requested address is in
// use, because both clear when other containers go away; 4 for a duplicate
// ADD; 5 for disk trouble; 50 from STATUS when a set has no address left.
//
// Duplicate ADD: a (container, ifname) that already holds an address in a
// range set gets an error, like the reference, not its old address back. The
// spec says the runtime DELs before it ADDs the same attachment again; an
// error makes a runtime that forgot visible instead of silently handing the
// same address to what may be a new interface, and the two implementations
// behave the same when a config switches between them.

import { readBoundedFile } from '../../lib/util/fs';
import { cniArgsOf } from '../../lib/cni/args';
import { CniError, ErrorCode, attachmentExists } from '../../lib/cni/errors';
import { validateContainerId, validateIfname, validateNetworkName } from '../../lib/cni/env';
import type { GcInvocation, Invocation } from '../../lib/cni/plugin';
import type { IpamHandlers } from '../../lib/cni/ipam';
import type { IpConfig, Result } from '../../lib/cni/types';
import { Addr, formatAddr, parseCidr } from './addr';
import { allocate, capacity, inSet } from './allocator';
import { assignRequested, HostLocalConfig, parseHostLocalConfig, parseResolvConf, Range, rangeFor, setString } from './config';
import { openDiskStore } from './store';
import type { LockedStore, OpenStore, Owner } from './store-types';

/** The CNI_ARGS host-local reads. */
export const HOST_LOCAL_ARGS = ['IP'] as const;

/**
 * CNI_ARGS IP. Our skel parsed CNI_ARGS with our knownArgs; an in-process
 * caller's skel parsed them with its own keys and may have dropped IP (with
 * IgnoreUnknown), so fall back to the raw string.
 */
function cniArgsIp(inv: Invocation): Record<string, string> {
  const parsed = inv.cniArgs ?? cniArgsOf(inv, HOST_LOCAL_ARGS);
  if (parsed.IP !== undefined) return { IP: parsed.IP };
  for (const pair of (inv.env.args ?? '').split(';')) {
    const kv = pair.split('=');
    if (kv.length === 2 && kv[0] === 'IP') return { IP: kv[1] };
  }
  return {};
}

function configOf(inv: Invocation): HostLocalConfig {
  validateNetworkName(inv.conf.name);
  return parseHostLocalConfig(inv.conf, cniArgsIp(inv));
}

/** The attachment this invocation is about; validated again because in-process callers bypass our skel. */
function attachmentOf(inv: Invocation): { containerID: string; ifname: string } {
  const { containerId, ifname } = inv.env;
  const missing = [!containerId && 'CNI_CONTAINERID', !ifname && 'CNI_IFNAME'].filter(Boolean);
  if (missing.length) throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  validateContainerId(containerId as string);
  validateIfname(ifname as string);
  return { containerID: containerId as string, ifname: ifname as string };
}

function who(o: Owner): string {
  return o.ifname === undefined ? `container "${o.containerID}"` : `container "${o.containerID}" interface "${o.ifname}"`;
}

/** A resolver file is small: read at most 64 KiB of a regular file (the reference stops at a 64 KiB line). */
function readDns(file: string) {
  return parseResolvConf(readBoundedFile(file, { what: 'host-local: resolvConf' }));
}

function ipConfig(set: readonly Range[], a: Addr): IpConfig {
  const r = rangeFor(set, a) as Range;
  return { address: `${formatAddr(a)}/${r.prefix}`, gateway: formatAddr({ family: r.family, value: r.gateway }) };
}

/**
 * One address per range set for `owner`, under the store's lock: the requested one or the next free one; all sets
 * or none. (A module function, not a closure of add: the snapshot carries its bytecode, docs/benchmarks/startup.md.)
 */
function reserveAll(tx: LockedStore, conf: HostLocalConfig, owner: Owner & { ifname: string }, requested: ReadonlyArray<Addr | undefined>): Addr[] {
  const held = tx.heldBy(owner.containerID, owner.ifname);
  const heldAny = [...held.exact, ...held.legacy];
  const got: Addr[] = [];
  try {
    for (let i = 0; i < conf.sets.length; i++) { // (a loop, not a forEach closure: see above)
      const set = conf.sets[i];
      const dup = heldAny.find((a) => rangeFor(set, a));
      if (dup) {
        throw attachmentExists(`${formatAddr(dup)} has been allocated to ${who(owner)} in range set ${i} (${setString(set)}); duplicate allocation is not allowed (DEL first)`, 'a runtime must not ADD one attachment (CNI_CONTAINERID, CNI_IFNAME) twice');
      }
      const want = requested[i];
      let a: Addr | undefined;
      if (want) {
        if (!tx.tryReserve(want, owner)) {
          const holder = tx.holderOf(want);
          const by = holder ? ` (in use by ${who(holder)})` : '';
          throw new CniError(ErrorCode.TryAgainLater, `requested IP address ${formatAddr(want)} is not available in range set ${i} (${setString(set)})${by}`);
        }
        a = want;
      } else {
        a = allocate(set, tx.lastReserved(i), (c) => tx.tryReserve(c, owner));
        if (!a) throw new CniError(ErrorCode.TryAgainLater, `no IP addresses available in range set ${i}: ${setString(set)}`, `network "${conf.name}"`);
      }
      got.push(a);
      tx.setLastReserved(i, a);
    }
  } catch (err) {
    for (const a of got) tx.release(a, owner); // one ADD: all sets or none
    throw err;
  }
  return got;
}

/** The handlers over a store (the disk store; tests pass memory stores). */
export function makeHostLocalIpam(openStore: OpenStore = openDiskStore): Required<IpamHandlers> {
  return {
    async add(inv: Invocation): Promise<Result> {
      const owner = attachmentOf(inv);
      const conf = configOf(inv);
      const requested = assignRequested(conf);
      const dns = conf.resolvConf ? readDns(conf.resolvConf) : undefined;
      const store = openStore(conf.dataDir, conf.name);

      const addrs = store.withLock((tx) => reserveAll(tx, conf, owner, requested));

      const result: Result = { cniVersion: conf.cniVersion, ips: addrs.map((a, i) => ipConfig(conf.sets[i], a)) };
      if (conf.routes.length) result.routes = conf.routes;
      if (dns) result.dns = dns;
      return result;
    },

    async del(inv: Invocation): Promise<void> {
      const owner = attachmentOf(inv);
      const conf = configOf(inv);
      const store = openStore(conf.dataDir, conf.name);
      if (!store.exists()) return;
      store.withLock((tx) => {
        // Every address of the attachment, whatever the ranges say now; legacy
        // files (container ID only) only when there is no exact match, like the reference.
        const held = tx.heldBy(owner.containerID, owner.ifname);
        if (held.exact.length) for (const a of held.exact) tx.release(a, owner);
        else for (const a of held.legacy) tx.release(a, { containerID: owner.containerID });
      });
    },

    async check(inv: Invocation): Promise<void> {
      const owner = attachmentOf(inv);
      const conf = configOf(inv);
      const store = openStore(conf.dataDir, conf.name);
      const notFound = (detail: string) => new CniError(ErrorCode.UnknownContainer, `host-local: ${detail} in network "${conf.name}"`);
      if (!store.exists()) throw notFound(`no address is reserved for ${who(owner)}`);
      const held = store.withLock((tx) => tx.heldBy(owner.containerID, owner.ifname));
      const all = [...held.exact, ...held.legacy].map(formatAddr);
      if (all.length === 0) throw notFound(`no address is reserved for ${who(owner)}`);
      // With a prevResult, every address it lists from our ranges must still be ours.
      for (const ip of inv.conf.prevResult?.ips ?? []) {
        const c = parseCidr(ip.address);
        if (!c || !conf.sets.some((s) => rangeFor(s, c.addr))) continue;
        if (!all.includes(formatAddr(c.addr))) throw notFound(`${formatAddr(c.addr)} from prevResult is not reserved for ${who(owner)}`);
      }
    },

    async gc(inv: GcInvocation): Promise<void> {
      const conf = configOf(inv);
      const store = openStore(conf.dataDir, conf.name);
      if (!store.exists()) return;
      const valid = inv.validAttachments;
      const isValid = (o: Owner | undefined) =>
        !!o && valid.some((v) => v.containerID === o.containerID && (o.ifname === undefined || v.ifname === o.ifname));
      store.withLock((tx) => {
        for (const r of tx.all()) if (!isValid(r.owner)) tx.release(r.addr, r.owner);
      });
    },

    async status(inv: Invocation): Promise<void> {
      const conf = configOf(inv);
      const store = openStore(conf.dataDir, conf.name);
      const reserved = store.exists() ? store.reservedAddrs() : [];
      conf.sets.forEach((set, i) => {
        const used = BigInt(reserved.filter((a) => inSet(set, a)).length);
        if (used >= capacity(set)) {
          throw new CniError(ErrorCode.NotAvailable, `no IP addresses available in range set ${i}: ${setString(set)}`, `network "${conf.name}": ${used} of ${capacity(set)} addresses reserved`);
        }
      });
    },
  };
}

export const hostLocalIpam = makeHostLocalIpam();
