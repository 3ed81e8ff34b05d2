// The parts of portmap that talk to the kernel: one nft transaction per
// change, conntrack flushes, route_localnet. Everything runs in the process's
// own network namespace (the host's, as CNI runs plugins).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { applyNft, NftError } from '../../lib/firewall/nft';
import {
  ElementOp,
  parseOwnerComment,
  PORTMAP_TABLE,
  PortmapEntry,
  PortmapNetwork,
  renderDeclareAndPublish,
  renderGetElements,
  renderPublish,
  renderRemoveElements,
} from '../../lib/firewall/portmap';

function nft(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nft', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function describeClaim(op: ElementOp): string {
  const [addr, proto, port] = op.key.split(' . ');
  return `${proto} port ${port} on ${addr === '0.0.0.0' || addr === '::' ? `every ${addr === '::' ? 'IPv6' : 'IPv4'} address` : addr}`;
}

/** After a refused `create element`: say which port and who holds it. */
function explainConflict(ops: readonly ElementOp[], err: NftError, table: string): CniError {
  for (const op of ops.filter((o) => o.set.startsWith('claims'))) {
    const r = nft(['get', 'element', 'inet', table, op.set, `{ ${op.key} }`]);
    if (r.status !== 0) continue;
    const comment = /comment "([^"]*)"/.exec(r.stdout)?.[1];
    const holder = comment ? parseOwnerComment(comment) : undefined;
    const who = holder ? `container "${holder.containerID}" (network "${holder.network}", interface "${holder.ifname}")` : 'another container';
    return new CniError(ErrorCode.InvalidConfig, `portmap: host ${describeClaim(op)} is already published by ${who}`, err.stderr.trim());
  }
  return new CniError(ErrorCode.InvalidConfig, 'portmap: a requested host port is already published', err.stderr.trim());
}

const MISSING = /No such file or directory|does not exist/;

/**
 * Publish the elements in one transaction. Steady state: element operations
 * only (renderPublish). If the network's structure is missing or was declared
 * from another config (ENOENT), declare it and publish in one transaction.
 * A claim someone else holds fails either transaction atomically (EEXIST).
 */
export function publish(net: PortmapNetwork, ops: readonly ElementOp[], table = PORTMAP_TABLE): void {
  try {
    applyNft(renderPublish(net, ops, table));
    return;
  } catch (err) {
    if (!(err instanceof NftError)) throw new CniError(ErrorCode.IoFailure, `portmap: ${(err as Error).message}`);
    if (!MISSING.test(err.stderr)) throw failure(ops, err, table);
  }
  try {
    applyNft(renderDeclareAndPublish(net, ops, table));
  } catch (err) {
    throw failure(ops, err, table);
  }
}

function failure(ops: readonly ElementOp[], err: unknown, table: string): CniError {
  if (err instanceof NftError && /File exists/.test(err.stderr)) return explainConflict(ops, err, table);
  return new CniError(ErrorCode.IoFailure, `portmap: ${(err as Error).message}`);
}

const ALREADY_GONE = MISSING;

/**
 * Remove an attachment's elements. One transaction normally; if it fails
 * (the table is gone, or a key was re-published by someone else), element by
 * element, leaving what is not ours. Returns the errors it could not ignore.
 */
export function unpublish(ops: readonly ElementOp[], table = PORTMAP_TABLE): string[] {
  if (ops.length === 0) return [];
  try {
    applyNft(renderRemoveElements(ops, table));
    return [];
  } catch { /* fall through to the careful path */ }
  const errors: string[] = [];
  for (const op of ops) {
    try {
      applyNft(renderRemoveElements([op], table));
    } catch (err) {
      const stderr = err instanceof NftError ? err.stderr : String(err);
      if (/File exists/.test(stderr) || ALREADY_GONE.test(stderr)) continue; // someone else's now, or gone
      errors.push(`removing ${op.set} { ${op.key} }: ${(err as Error).message}`);
    }
  }
  return errors;
}

/** CHECK: every element exists and maps to our value. Returns what is wrong. */
export function verifyPublished(ops: readonly ElementOp[], table = PORTMAP_TABLE): string[] {
  const problems: string[] = [];
  for (const q of renderGetElements(ops, table)) {
    const r = nft(q.args);
    if (r.status !== 0) {
      problems.push(`nft set ${q.set} lacks some of { ${q.expect.map((o) => o.key).join(', ')} }`);
      continue;
    }
    const text = r.stdout.replace(/\s+/g, ' ');
    for (const op of q.expect) {
      if (op.value === undefined) continue;
      const re = new RegExp(`${escapeRe(op.key)}( comment "[^"]*")? : ${escapeRe(op.value)}(?![0-9a-fx:.])`);
      if (!re.test(text)) problems.push(`nft map ${q.set}: ${op.key} does not map to ${op.value}`);
    }
  }
  return problems;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Drop stale UDP conntrack entries for these host ports, so new datagrams hit the new DNAT. */
export function flushUdpConntrack(entries: readonly PortmapEntry[]): string[] {
  const warnings: string[] = [];
  const done = new Set<string>();
  for (const e of entries) {
    if (e.protocol !== 'udp') continue;
    const k = `${e.family}/${e.hostPort}`;
    if (done.has(k)) continue;
    done.add(k);
    const r = spawnSync('conntrack', ['-D', '-f', e.family === 4 ? 'ipv4' : 'ipv6', '-p', 'udp', '--orig-port-dst', String(e.hostPort)], { encoding: 'utf8' });
    // Exit 1 with "0 flow entries have been deleted" just means there was nothing to flush.
    if (r.error) warnings.push(`conntrack: ${r.error.message}`);
    else if (r.status !== 0 && !/0 flow entries/.test(r.stderr)) warnings.push(`conntrack -D udp dport ${e.hostPort}: ${r.stderr.trim()}`);
  }
  return warnings;
}

/**
 * Let connections to 127.0.0.1:hostPort leave towards the container: the
 * kernel drops packets with a loopback source on other interfaces unless
 * route_localnet is set on the interface that routes to the container.
 */
export function enableRouteLocalnet(containerIPv4: string): void {
  const r = spawnSync('ip', ['-j', 'route', 'get', containerIPv4], { encoding: 'utf8' });
  if (r.status !== 0) throw new CniError(ErrorCode.IoFailure, `portmap: ip route get ${containerIPv4}: ${(r.stderr || '').trim()}`);
  const dev = (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev;
  if (!dev || !/^[^/.][^/]*$/.test(dev)) throw new CniError(ErrorCode.IoFailure, `portmap: no route to container address ${containerIPv4}`);
  const file = `/proc/sys/net/ipv4/conf/${dev}/route_localnet`;
  if (fs.readFileSync(file, 'utf8').trim() !== '1') fs.writeFileSync(file, '1');
}
