// Pure renderers of the per-network DNS service: the dnsmasq configuration,
// one hosts file per attachment, and the result's dns field.
//
// dnsmasq.conf is read by dnsmasq as root: one "option=value" per line,
// whitespace folded, '"' and '\\' start quoting and escapes, a '#' after
// whitespace starts a comment, ',' separates arguments. Every line goes
// through dnsmasqOption(), which refuses a value that dnsmasq would read as
// anything but one argument of that one option.

import { isIP } from '../ip';
import { CniError, ErrorCode } from '../cni/errors';
import type { Dns } from '../cni/types';
import { show } from '../util/show';
import { attachmentKey, type AttachmentId } from '../util/attachment-key';
import { validDnsName } from './names';

const OPTION_NAME = /^[a-z][a-z0-9-]*$/;
/** Printable ASCII without space, quote, backslash and comma: dnsmasq takes it literally as one value. */
const PLAIN_VALUE = /^[\x21-\x7e]+$/;
const SPECIAL = /["'\\,]/;

/** Why dnsmasq would not read `v` as one literal option value, or undefined. */
export function dnsmasqValueProblem(v: string): string | undefined {
  if (!PLAIN_VALUE.test(v)) return 'cannot be written to dnsmasq.conf (only printable ASCII without spaces or control characters)';
  if (SPECIAL.test(v)) return 'cannot be written to dnsmasq.conf (no quotes, backslashes or commas)';
  return undefined;
}

/** One line of dnsmasq.conf: "name" or "name=value". Throws (code 7) rather than write what dnsmasq would read differently. */
export function dnsmasqOption(name: string, value?: string | number): string {
  if (!OPTION_NAME.test(name)) throw new CniError(ErrorCode.Internal, `dnsmasq option name ${show(name)} is not valid`);
  if (value === undefined) return name;
  const text = String(value);
  const why = dnsmasqValueProblem(text);
  if (why) throw new CniError(ErrorCode.InvalidConfig, `dnsmasq option ${name}: value ${show(text)} ${why}`);
  return `${name}=${text}`;
}

/** A comment line: printable text only, so it stays one line. */
function dnsmasqComment(text: string): string {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new CniError(ErrorCode.Internal, `dnsmasq comment ${show(text)} is not printable ASCII`);
  return `# ${text}`;
}

export interface DnsmasqConfInput {
  network: string;
  /** Gateway addresses on the bridge: the only addresses dnsmasq binds. */
  listen: readonly string[];
  domain: string;
  hostsDir: string;
  pidFile: string;
  /** Explicit upstream servers; empty: read resolvConf. */
  upstream: readonly string[];
  resolvConf: string;
  port?: number;
}

/** The whole configuration; the daemon is started with only --conf-file=<this file>. */
export function renderDnsmasqConf(c: DnsmasqConfInput): string {
  for (const a of c.listen) if (!isIP(a)) throw new CniError(ErrorCode.Internal, `dnsmasq listen address ${show(a)} is not an IP address`);
  if (!validDnsName(c.domain)) throw new CniError(ErrorCode.InvalidConfig, `dnsmasq domain ${show(c.domain)} is not a DNS name`);
  const lines = [
    dnsmasqComment(`node-cni-plugins: DNS service of network "${c.network}" (generated; rewritten on restart)`),
    dnsmasqOption('port', c.port ?? 53),
    // Bind exactly the gateway addresses (never a wildcard socket): not an open resolver elsewhere.
    dnsmasqOption('bind-interfaces'),
    ...c.listen.map((a) => dnsmasqOption('listen-address', a)),
    dnsmasqOption('no-hosts'),
    dnsmasqOption('hostsdir', c.hostsDir),
    dnsmasqOption('domain', c.domain),
    // Names in our domain are answered here or not at all; bare names never go upstream.
    dnsmasqOption('local', `/${c.domain}/`),
    dnsmasqOption('expand-hosts'),
    dnsmasqOption('domain-needed'),
    dnsmasqOption('bogus-priv'),
    dnsmasqOption('pid-file', c.pidFile),
  ];
  if (c.upstream.length) lines.push(dnsmasqOption('no-resolv'), ...c.upstream.map((s) => dnsmasqOption('server', s)));
  else lines.push(dnsmasqOption('resolv-file', c.resolvConf));
  return lines.join('\n') + '\n';
}

/**
 * One line per container address: "<address> <name>...", after a comment
 * naming the attachment. Addresses come from IPAM (maybe an external plugin),
 * names from the runtime: both are checked, so a line is never more than that.
 */
export function renderHostsFile(addresses: readonly string[], names: readonly string[], owner?: HostsOwner): string {
  for (const a of addresses) if (!isIP(a)) throw new CniError(ErrorCode.Internal, `hosts file: ${show(a)} is not an IP address`);
  for (const n of names) if (!validDnsName(n)) throw new CniError(ErrorCode.InvalidConfig, `hosts file: ${show(n)} is not a DNS name`);
  const head = owner ? `${hostsOwnerLine(owner)}\n` : '';
  if (names.length === 0) return head;
  return head + addresses.map((a) => `${a} ${names.join(' ')}\n`).join('');
}

export type HostsOwner = AttachmentId;

/** The first line of a hosts file: whose it is (dnsmasq reads "#" lines as comments). */
export function hostsOwnerLine(o: HostsOwner): string {
  return `# ${JSON.stringify([o.network, o.containerId, o.ifname])}`;
}

/**
 * The hosts file of one attachment: a hash of (network, container ID,
 * ifname), so no two attachments share a name (the old "<id>.<ifname>" did:
 * "a"+"e.x" and "a.e"+"x") and a 1000-character container ID still fits.
 * Not a dotfile: dnsmasq skips those, which is what the temp file relies on.
 */
export function hostsFileName(o: HostsOwner): string {
  return attachmentKey(o);
}

/** Hosts file name of releases before the hashed one; still removed on DEL/GC. */
export function legacyHostsFileName(containerId: string, ifname: string): string {
  return `${containerId}.${ifname}`;
}

/**
 * The result's dns: the gateways first in nameservers and the network's
 * domain first in search, followed by whatever the config's dns (or IPAM's)
 * already had.
 */
export function mergeResultDns(existing: Dns | undefined, nameservers: readonly string[], domain: string): Dns {
  const uniq = (xs: string[]): string[] => [...new Set(xs)];
  const out: Dns = { ...(existing ?? {}) };
  out.nameservers = uniq([...nameservers, ...(existing?.nameservers ?? [])]);
  out.search = uniq([domain, ...(existing?.search ?? [])]);
  return out;
}
