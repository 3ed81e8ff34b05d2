// The pure request builders: what we would send, attribute by attribute.
import {
  buildAddressRequest, buildBridgePortFlagsRequest, buildBridgeRequest, buildBridgeVlanRequest, buildFdbRequest, buildMacvlanRequest,
  buildNeighbourRequest, buildRouteRequest, buildSetLinkRequest, buildVethRequest, buildVlanRequest, buildVxlanRequest, IFF_PROMISC, IFF_UP, RTNH_F,
} from '../../lib/netlink';
import { decodeBridgeVlans } from '../../lib/netlink/rtnl';
import {
  AF, IFA, IFADDRMSG_LEN, IFINFOMSG_LEN, IFLA, IFLA_INFO, NDA, NDMSG_LEN, NLA_F_NESTED, NLM_F, RTA, RTM, RTMSG_LEN,
  attrMap, decodeAttrs, parseIfaddrmsg, parseIfinfomsg, parseNdmsg, parseRtmsg, readStr,
} from '../../lib/netlink/wire';

const linkAttrs = (data: Buffer) => attrMap(data.subarray(IFINFOMSG_LEN));
function linkInfo(data: Buffer): { kind: string; info: Map<number, Buffer> } {
  const li = attrMap(linkAttrs(data).get(IFLA.LINKINFO)!);
  return { kind: readStr(li.get(IFLA_INFO.KIND)!), info: li.has(IFLA_INFO.DATA) ? attrMap(li.get(IFLA_INFO.DATA)!) : new Map() };
}

describe('buildVlanRequest (the bytes; the l2 tier sends them to a kernel with 8021q)', () => {
  it('encodes name, parent, mtu and VLAN id/protocol', () => {
    const req = buildVlanRequest({ name: 'eth0.100', parentIndex: 7, vlanId: 100, mtu: 1496 });
    expect(req.type).toBe(RTM.NEWLINK);
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.EXCL);
    expect(parseIfinfomsg(req.data)).toMatchObject({ family: AF.UNSPEC, index: 0 });
    const a = linkAttrs(req.data);
    expect(readStr(a.get(IFLA.IFNAME)!)).toBe('eth0.100');
    expect(a.get(IFLA.LINK)!.readUInt32LE(0)).toBe(7);
    expect(a.get(IFLA.MTU)!.readUInt32LE(0)).toBe(1496);
    const { kind, info } = linkInfo(req.data);
    expect(kind).toBe('vlan');
    expect(info.get(1)!.readUInt16LE(0)).toBe(100); // IFLA_VLAN_ID
    expect(info.get(5)!.readUInt16BE(0)).toBe(0x8100); // IFLA_VLAN_PROTOCOL, network order
  });

  it('has the exact bytes iproute2 would send for the link info', () => {
    const req = buildVlanRequest({ name: 'v', parentIndex: 2, vlanId: 5 });
    expect(req.data.subarray(IFINFOMSG_LEN).toString('hex')).toBe(
      '0600' + '0300' + '76000000' // IFLA_IFNAME "v\0" padded
      + '0800' + '0500' + '02000000' // IFLA_LINK 2
      + '2400' + '1200' // IFLA_LINKINFO, 36 bytes
      + '0900' + '0100' + '766c616e00000000' // IFLA_INFO_KIND "vlan\0"
      + '1400' + '0200' // IFLA_INFO_DATA, 20 bytes
      + '0600' + '0100' + '05000000' // IFLA_VLAN_ID 5
      + '0600' + '0500' + '81000000', // IFLA_VLAN_PROTOCOL 0x8100 (big-endian)
    );
  });

  it.each([0, 4095, 1.5])('rejects VLAN id %p', (vlanId) => {
    expect(() => buildVlanRequest({ name: 'v', parentIndex: 2, vlanId })).toThrow(/out of range/);
  });
});

describe('link builders', () => {
  it('veth: the peer is a full ifinfomsg with its own name and namespace fd', () => {
    const req = buildVethRequest({ name: 'eth0', peerName: 'veth1234', peerNetnsFd: 9, mtu: 1450, mac: '02:00:00:00:00:01' });
    const a = linkAttrs(req.data);
    expect(readStr(a.get(IFLA.IFNAME)!)).toBe('eth0');
    expect(a.get(IFLA.ADDRESS)!.toString('hex')).toBe('020000000001');
    expect(a.has(IFLA.NET_NS_FD)).toBe(false);
    const { kind, info } = linkInfo(req.data);
    expect(kind).toBe('veth');
    const peer = info.get(1)!;
    const pa = attrMap(peer.subarray(IFINFOMSG_LEN));
    expect(readStr(pa.get(IFLA.IFNAME)!)).toBe('veth1234');
    expect(pa.get(IFLA.NET_NS_FD)!.readUInt32LE(0)).toBe(9);
    expect(pa.get(IFLA.MTU)!.readUInt32LE(0)).toBe(1450);
  });

  it('bridge: vlan_filtering only when asked for', () => {
    expect(linkInfo(buildBridgeRequest({ name: 'cni0' }).data).info.size).toBe(0);
    expect(linkInfo(buildBridgeRequest({ name: 'cni0', vlanFiltering: true }).data).info.get(7)!.readUInt8(0)).toBe(1);
  });

  it.each([['bridge', 4], ['private', 1], ['vepa', 2], ['passthru', 8]] as const)('macvlan mode %s = %d', (mode, value) => {
    const req = buildMacvlanRequest({ name: 'mv0', parentIndex: 3, mode, netnsFd: 11, bcqueuelen: 100 });
    const a = linkAttrs(req.data);
    expect(a.get(IFLA.LINK)!.readUInt32LE(0)).toBe(3);
    expect(a.get(IFLA.NET_NS_FD)!.readUInt32LE(0)).toBe(11);
    const { kind, info } = linkInfo(req.data);
    expect(kind).toBe('macvlan');
    expect(info.get(1)!.readUInt32LE(0)).toBe(value);
    expect(info.get(7)!.readUInt32LE(0)).toBe(100);
  });

  it('vxlan: VNI, local, device, learning off, port in network order', () => {
    const { kind, info } = linkInfo(buildVxlanRequest({ name: 'vx0', vni: 4097, local: '10.0.0.1', dev: 2, port: 4789 }).data);
    expect(kind).toBe('vxlan');
    expect(info.get(1)!.readUInt32LE(0)).toBe(4097);
    expect([...info.get(4)!]).toEqual([10, 0, 0, 1]);
    expect(info.get(3)!.readUInt32LE(0)).toBe(2);
    expect(info.get(7)!.readUInt8(0)).toBe(0);
    expect(info.get(15)!.readUInt16BE(0)).toBe(4789);
    const v6 = linkInfo(buildVxlanRequest({ name: 'vx0', vni: 1, local: 'fd00::1' }).data).info;
    expect(v6.get(17)!.length).toBe(16); // IFLA_VXLAN_LOCAL6
  });

  it.each(['', 'a-very-long-name0', 'a/b', 'a:b', 'a b', '.', '..'])('rejects interface name %p', (name) => {
    expect(() => buildBridgeRequest({ name })).toThrow(/invalid interface name/);
  });

  it('set link: up flag with its change mask, master 0 detaches', () => {
    const up = parseIfinfomsg(buildSetLinkRequest(5, { up: true }).data);
    expect(up).toMatchObject({ index: 5, flags: 1, change: 1 });
    const down = parseIfinfomsg(buildSetLinkRequest(5, { up: false }).data);
    expect(down).toMatchObject({ flags: 0, change: 1 });
    const detach = buildSetLinkRequest(5, { master: 0 });
    expect(parseIfinfomsg(detach.data).change).toBe(0);
    expect(linkAttrs(detach.data).get(IFLA.MASTER)!.readUInt32LE(0)).toBe(0);
  });

  it('bridge port flags: AF_BRIDGE and IFLA_PROTINFO marked nested', () => {
    const req = buildBridgePortFlagsRequest(4, { hairpin: true, isolated: false });
    expect(parseIfinfomsg(req.data)).toMatchObject({ family: AF.BRIDGE, index: 4 });
    const raw = req.data.subarray(IFINFOMSG_LEN);
    expect(raw.readUInt16LE(2)).toBe(IFLA.PROTINFO | NLA_F_NESTED);
    const inner = attrMap(decodeAttrs(raw)[0].data);
    expect(inner.get(4)!.readUInt8(0)).toBe(1); // IFLA_BRPORT_MODE (hairpin)
    expect(inner.get(33)!.readUInt8(0)).toBe(0); // IFLA_BRPORT_ISOLATED
    expect(inner.has(8)).toBe(false);
  });
});

describe('address, route, neighbour, FDB builders', () => {
  it('v4 address: local + address + broadcast, prefix in the header', () => {
    const req = buildAddressRequest('add', 3, '10.1.2.3/24');
    expect(parseIfaddrmsg(req.data)).toMatchObject({ family: AF.INET, prefixlen: 24, index: 3 });
    const a = attrMap(req.data.subarray(IFADDRMSG_LEN));
    expect([...a.get(IFA.LOCAL)!]).toEqual([10, 1, 2, 3]);
    expect([...a.get(IFA.BROADCAST)!]).toEqual([10, 1, 2, 255]);
  });

  it('v6 address with nodad', () => {
    const req = buildAddressRequest('add', 3, 'fd00::5/64', { nodad: true });
    expect(parseIfaddrmsg(req.data)).toMatchObject({ family: AF.INET6, prefixlen: 64, flags: 0x02 });
    expect(attrMap(req.data.subarray(IFADDRMSG_LEN)).has(IFA.BROADCAST)).toBe(false);
  });

  it('route: default via gateway in table 1000 (RTA_TABLE), metric, mtu', () => {
    const req = buildRouteRequest('add', { dst: 'default', gw: '10.0.0.1', oif: 2, table: 1000, metric: 7, mtu: 1400 });
    const h = parseRtmsg(req.data);
    expect(h).toMatchObject({ family: AF.INET, dstLen: 0, table: 0, scope: 0, type: 1, protocol: 3 });
    const a = attrMap(req.data.subarray(RTMSG_LEN));
    expect(a.has(RTA.DST)).toBe(false);
    expect([...a.get(RTA.GATEWAY)!]).toEqual([10, 0, 0, 1]);
    expect(a.get(RTA.TABLE)!.readUInt32LE(0)).toBe(1000);
    expect(a.get(RTA.PRIORITY)!.readUInt32LE(0)).toBe(7);
    expect(attrMap(a.get(RTA.METRICS)!).get(2)!.readUInt32LE(0)).toBe(1400);
  });

  it('route: a device route gets link scope and the network address', () => {
    const req = buildRouteRequest('add', { dst: '10.9.8.7/16', oif: 2 });
    expect(parseRtmsg(req.data)).toMatchObject({ dstLen: 16, scope: 253, table: 254 });
    expect([...attrMap(req.data.subarray(RTMSG_LEN)).get(RTA.DST)!]).toEqual([10, 9, 0, 0]);
  });

  it('route: gateway family must match', () => {
    expect(() => buildRouteRequest('add', { dst: '10.0.0.0/8', gw: 'fd00::1' })).toThrow(/another IP family/);
  });

  it('neighbour: permanent, replace', () => {
    const req = buildNeighbourRequest('add', 6, 'fd00::9', '02:00:00:00:00:09');
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.REPLACE);
    expect(parseNdmsg(req.data)).toMatchObject({ family: AF.INET6, index: 6, state: 0x80 });
  });

  it('fdb: AF_BRIDGE, NTF_SELF, permanent, append for flood entries', () => {
    const req = buildFdbRequest('add', 8, '00:00:00:00:00:00', '192.168.1.2', { append: true });
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.APPEND);
    expect(parseNdmsg(req.data)).toMatchObject({ family: AF.BRIDGE, index: 8, state: 0x80, flags: 0x02 });
    const a = attrMap(req.data.subarray(NDMSG_LEN));
    expect([...a.get(NDA.DST)!]).toEqual([192, 168, 1, 2]);
    expect(buildFdbRequest('add', 8, '02:00:00:00:00:01', '192.168.1.2').flags).toBe(NLM_F.CREATE | NLM_F.REPLACE);
  });
});

describe('bridge port VLANs (the bytes; the l2 tier sends them to a kernel with VLAN filtering)', () => {
  it('encodes what `bridge vlan add dev X vid 100 pvid untagged master` sends', () => {
    const req = buildBridgeVlanRequest('add', 42, { vid: 100, pvid: true, untagged: true });
    expect(req.type).toBe(RTM.SETLINK);
    expect(req.flags).toBe(0);
    expect(req.data.toString('hex')).toBe(
      '07000000' + '2a000000' + '00000000' + '00000000' + // ifinfomsg: AF_BRIDGE, index 42
      '1400' + '1a00' + // IFLA_AF_SPEC, 20 bytes
      '0600' + '0000' + '0100' + '0000' + // IFLA_BRIDGE_FLAGS = BRIDGE_FLAGS_MASTER (padded)
      '0800' + '0200' + '0600' + '6400', // IFLA_BRIDGE_VLAN_INFO {flags PVID|UNTAGGED, vid 100}
    );
  });

  it('deletes with RTM_DELLINK and plain flags', () => {
    const del = buildBridgeVlanRequest('del', 42, { vid: 1 });
    expect(del.type).toBe(RTM.DELLINK);
    expect(del.data.subarray(-4).toString('hex')).toBe('00000100');
  });

  it.each([0, 4095, 1.5])('refuses VID %p', (vid) => {
    expect(() => buildBridgeVlanRequest('add', 1, { vid })).toThrow(/out of range 1-4094/);
  });

  it('decodes a port\'s VLAN list, ranges expanded (what listBridgeVlans reads)', () => {
    const info = (flags: number, vid: number) => { const b = Buffer.alloc(4); b.writeUInt16LE(flags, 0); b.writeUInt16LE(vid, 2); return b; };
    // An RTM_NEWLINK as the kernel sends it: the add request's layout, with several VLAN_INFO entries.
    const spec = Buffer.concat([
      attr(2, info(0x2 | 0x4, 1)), attr(2, info(0x8, 10)), attr(2, info(0x10, 12)), attr(2, info(0, 100)),
    ]);
    const msg = Buffer.concat([buildBridgeVlanRequest('add', 5, { vid: 1 }).data.subarray(0, IFINFOMSG_LEN), attr(26, spec)]);
    expect(decodeBridgeVlans(msg)).toEqual([
      { vid: 1, pvid: true, untagged: true },
      { vid: 10, pvid: false, untagged: false }, { vid: 11, pvid: false, untagged: false }, { vid: 12, pvid: false, untagged: false },
      { vid: 100, pvid: false, untagged: false },
    ]);
    expect(decodeBridgeVlans(buildSetLinkRequest(5, { up: true }).data)).toEqual([]);
  });
});

function attr(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(4 + data.length, 0);
  h.writeUInt16LE(type, 2);
  return Buffer.concat([h, data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}

describe('link flags', () => {
  it.each([
    [{ promisc: true }, IFF_PROMISC, IFF_PROMISC],
    [{ promisc: false }, 0, IFF_PROMISC],
    [{ up: true, promisc: true }, IFF_UP | IFF_PROMISC, IFF_UP | IFF_PROMISC],
    [{ up: false }, 0, IFF_UP],
    [{ mtu: 1400 }, 0, 0],
    [{ allmulti: true }, 0x200, 0x200],
    [{ allmulti: false, promisc: true }, IFF_PROMISC, IFF_PROMISC | 0x200],
  ])('%p sets flags %d within change mask %d', (change, flags, mask) => {
    const hdr = parseIfinfomsg(buildSetLinkRequest(3, change).data);
    expect(hdr).toMatchObject({ index: 3, flags, change: mask });
  });

  it('sends the transmit queue length as IFLA_TXQLEN (13), u32', () => {
    const data = buildSetLinkRequest(3, { txqlen: 5000 }).data;
    expect(data.subarray(IFINFOMSG_LEN).equals(attr(13, Buffer.from([0x88, 0x13, 0, 0])))).toBe(true);
  });
});

describe('onlink routes', () => {
  it('sets RTNH_F_ONLINK in rtm_flags only when asked', () => {
    const on = parseRtmsg(buildRouteRequest('add', { dst: '10.9.0.0/16', gw: '192.0.2.1', oif: 4, onlink: true }).data);
    expect(on.flags).toBe(RTNH_F.ONLINK);
    expect(parseRtmsg(buildRouteRequest('add', { dst: '10.9.0.0/16', gw: '192.0.2.1', oif: 4 }).data).flags).toBe(0);
  });
});
