// lib/netlink/conntrack in a throwaway namespace: entries made with the
// conntrack CLI, deleted by destination port over ctnetlink (one dump per
// family), checked with the CLI again.
import { deleteConntrackEntries, IPPROTO } from '../../lib/netlink/conntrack';
import { withNfnl } from '../../lib/netlink/nfnetlink';
import { throwawayNetns } from '../helpers/sandbox';

const fx = throwawayNetns('lfct');
const { sb } = fx;

function insert(args: string[]): void {
  const r = sb.inNs(fx.ns, 'conntrack', ['-I', ...args, '-t', '120']);
  if (r.status !== 0) throw new Error(`conntrack -I ${args.join(' ')}: ${r.stderr}`);
}

function entries(): string[] {
  return sb.inNs(fx.ns, 'conntrack', ['-L', '-o', 'extended']).stdout.trim().split('\n').filter(Boolean).map((l) => l.replace(/\s+/g, ' '));
}

it('deletes the UDP entries of the given destination ports in every zone, and nothing else', async () => {
  insert(['-p', 'udp', '-s', '10.1.1.1', '-d', '10.1.1.2', '--sport', '1000', '--dport', '5300']);
  insert(['-p', 'udp', '-s', '10.1.1.1', '-d', '10.1.1.2', '--sport', '1001', '--dport', '5301']);
  insert(['-p', 'udp', '-s', '10.1.1.3', '-d', '10.1.1.2', '--sport', '1002', '--dport', '5300', '-w', '7']);
  insert(['-p', 'tcp', '-s', '10.1.1.1', '-d', '10.1.1.2', '--sport', '1000', '--dport', '5300', '--state', 'ESTABLISHED']);
  insert(['-p', 'udp', '-s', 'fd00::1', '-d', 'fd00::2', '--sport', '1000', '--dport', '5300']);
  insert(['-p', 'udp', '-s', 'fd00::1', '-d', 'fd00::2', '--sport', '1001', '--dport', '5302']);
  expect(entries()).toHaveLength(6);

  const deleted = await withNfnl(fx.netns, async (nfnl) => [
    await deleteConntrackEntries(nfnl, { family: 4, protocol: IPPROTO.UDP, dstPorts: new Set([5300, 9999]) }),
    await deleteConntrackEntries(nfnl, { family: 6, protocol: IPPROTO.UDP, dstPorts: new Set([5300]) }),
  ]);
  expect(deleted).toEqual([2, 1]);
  const left = entries();
  expect(left).toHaveLength(3);
  expect(left.some((l) => /ipv4 .*udp .*dport=5301/.test(l))).toBe(true);
  expect(left.some((l) => /ipv4 .*tcp .*dport=5300/.test(l))).toBe(true);
  expect(left.some((l) => /ipv6 .*udp .*dport=5302/.test(l))).toBe(true);
  expect(left.some((l) => /udp .*dport=5300/.test(l))).toBe(false);

  // Nothing left to match: no error, nothing deleted.
  expect(await withNfnl(fx.netns, (nfnl) => deleteConntrackEntries(nfnl, { family: 4, protocol: IPPROTO.UDP, dstPorts: new Set([5300]) }))).toBe(0);
});
