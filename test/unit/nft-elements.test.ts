// lib/firewall/nft-elements.ts: which scripts go over nfnetlink directly, the
// messages (held to what nft 1.0.6 sent for the same lines, captured with
// strace `-e write=all` from a bridge ADD and DEL, and from portmap's lines
// run by `nft -f` on a table declared as renderSkeleton declares it), and
// nft-like results.
import { NftError } from '../../lib/firewall/nft';
import { elementBatch, elementMessage, elementResult, parseElementScript, runElementBatch } from '../../lib/firewall/nft-elements';
import { renderMasqCreate, renderMasqDel, renderMasqTakeover, renderMasqDeclare } from '../../lib/firewall/masquerade';
import { renderAddElements, renderRemoveElements, type ElementOp as PortmapOp } from '../../lib/firewall/portmap';
import { NLM_F } from '../../lib/netlink/wire';

const owner = { network: 'net1', containerId: 'abc123', ifname: 'eth0' };
const entries = [{ address: '10.187.0.41', subnet: '10.187.0.0/22' }, { address: 'fd00:1::29', subnet: 'fd00:1::/64' }];

/** nft 1.0.6, `create element inet node_cni_masq masq4 { 10.187.0.41 comment "42da8e94cf0f c1c32801b371441a labxs2/eth0" : jump masq-0f2f086a0202df5e }`. */
const NFT_CREATE_ELEMENTS = Buffer.concat([
  Buffer.from('6c000180' + '0c000180' + '08000100' + '0abb0029' + '2c000280' + '28000280' + '08000100' + 'fffffffd' + '1a000200', 'hex'),
  Buffer.from('masq-0f2f086a0202df5e\0\0\0', 'latin1'),
  Buffer.from('30000600' + '002a', 'hex'),
  Buffer.from('42da8e94cf0f c1c32801b371441a labxs2/eth0\0', 'latin1'),
]);
/** nft 1.0.6, `delete element inet node_cni_masq masq4 { 10.187.0.41 }`. */
const NFT_DELETE_ELEMENTS = Buffer.from('10000180' + '0c000180' + '08000100' + '0abb0029', 'hex');

/** The attributes of a message: [type, payload] in order. */
function attrs(buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let off = 0; off + 4 <= buf.length;) {
    const len = buf.readUInt16LE(off);
    out.push([buf.readUInt16LE(off + 2), buf.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}

describe('parseElementScript', () => {
  it('takes the element scripts of an ADD, a takeover and a DEL, line by line', () => {
    const create = parseElementScript(renderMasqCreate(owner, entries));
    expect(create?.map((o) => [o.verb, o.table, o.set, o.elements[0].key.length, o.elements[0].jump !== undefined, o.elements[0].comment !== undefined])).toEqual([
      ['create', 'node_cni_masq', 'masq4', 4, true, true],
      ['create', 'node_cni_masq', 'masq6', 16, true, true],
    ]);
    expect(parseElementScript(renderMasqTakeover(owner, entries))?.map((o) => o.verb)).toEqual(['add', 'delete', 'add', 'add', 'delete', 'add']);
    const del = parseElementScript(renderMasqDel(['10.187.0.41', 'fd00:1::29']));
    expect(del?.map((o) => [o.verb, o.elements[0].key.toString('hex')])).toEqual([['delete', '0abb0029'], ['delete', 'fd000001000000000000000000000029']]);
  });

  it.each([
    ['a structure declaration', renderMasqDeclare(owner, entries)],
    ['a rule', 'add rule inet t c masquerade\n'],
    ['a concatenation of another shape', 'add element inet t s { tcp . 10.0.0.1 }\n'],
    ['a port alone', 'add element inet t s { 80 }\n'],
    ['a port out of range', 'add element inet t s { tcp . 65536 }\n'],
    ['a port with a leading zero', 'add element inet t s { tcp . 080 }\n'],
    ['a protocol nft names but the project does not write', 'add element inet t s { icmp . 80 }\n'],
    ['two addresses of different families', 'add element inet t s { 10.0.0.1 . fd00::1 }\n'],
    ['data that is neither a verdict, a mark nor an address and port', 'add element inet t s { tcp . 80 : 10.0.0.1 }\n'],
    ['a mark longer than 32 bits', 'add element inet t s { tcp . 80 : 0x123456789 }\n'],
    ['a list that does not end cleanly', 'add element inet t s { 10.0.0.1, }\n'],
    ['an interface name', 'add element inet t s { "br0" }\n'],
    ['a key that is no address', 'delete element inet t s { 10.0.0.300 }\n'],
    ['a comment with a quote', 'add element inet t s { 10.0.0.1 comment "a\\"b" : jump c }\n'],
    ['a comment longer than nft takes', `add element inet t s { 10.0.0.1 comment "${'x'.repeat(129)}" : jump c }\n`],
    ['a delete with data', 'delete element inet t s { 10.0.0.1 : jump c }\n'],
    ['a delete with a comment', 'delete element inet t s { 10.0.0.1 . tcp . 80 comment "x" }\n'],
    ['another family', 'delete element ip t s { 10.0.0.1 }\n'],
    ['an empty script', '\n'],
  ])('leaves %s to libnftables', (_what, script) => {
    expect(parseElementScript(script)).toBeUndefined();
  });
});

/** What nft 1.0.6 sent as NFTA_SET_ELEM_LIST_ELEMENTS (and the message flags) for portmap's lines. */
const NFT_PORTMAP: Array<[string, number, string]> = [
  ['create element inet lpm claims4 { 0.0.0.0 . tcp . 8080 comment "net1/abc/eth0" : 0xc23805bb, 192.0.2.10 . udp . 53 comment "net1/abc/eth0" : 0xc23805bb }', 0x600,
    '38000180140001801000010000000000060000001f9000000c00028008000100bb0538c214000600000e6e6574312f6162632f6574683000380002801400018010000100c000020a11000000003500000c00028008000100bb0538c214000600000e6e6574312f6162632f6574683000'],
  ['create element inet lpm n_any4 { tcp . 8080 comment "net1/abc/eth0" : 10.88.0.5 . 80 }', 0x600,
    '38000180100001800c000100060000001f900000100002800c0001000a5800050050000014000600000e6e6574312f6162632f6574683000'],
  ['add element inet lpm n_targets4 { 10.88.0.5 . tcp . 80, 10.88.0.5 . udp . 53 }', 0x400,
    '1800018014000180100001000a58000506000000005000001800028014000180100001000a5800051100000000350000'],
  ['add element inet lpm n_hairpin4 { 10.88.0.5 . 10.88.0.5 }', 0x400, '14000180100001800c0001000a5800050a580005'],
  ['create element inet lpm n_ip4 { 192.0.2.10 . udp . 53 comment "net1/abc/eth0" : 10.88.0.5 . 53 }', 0x600,
    '3c0001801400018010000100c000020a1100000000350000100002800c0001000a5800050035000014000600000e6e6574312f6162632f6574683000'],
  ['create element inet lpm claims6 { :: . tcp . 8080 comment "net1/abc/eth0" : 0xc23805bb }', 0x600,
    '44000180200001801c00010000000000000000000000000000000000060000001f9000000c00028008000100bb0538c214000600000e6e6574312f6162632f6574683000'],
  ['create element inet lpm n_any6 { tcp . 8080 comment "net1/abc/eth0" : fd00::5 . 80 }', 0x600,
    '44000180100001800c000100060000001f9000001c00028018000100fd0000000000000000000000000000050050000014000600000e6e6574312f6162632f6574683000'],
  ['add element inet lpm n_targets6 { fd00::5 . sctp . 80 }', 0x400, '24000180200001801c000100fd0000000000000000000000000000058400000000500000'],
  ['add element inet lpm n_hairpin6 { fd00::5 . fd00::5 }', 0x400, '2c0001802800018024000100fd000000000000000000000000000005fd000000000000000000000000000005'],
  ['add element inet lpm claims4 { 0.0.0.0 . tcp . 8080 : 0xc23805bb, 192.0.2.10 . udp . 53 : 0xc23805bb }', 0x400,
    '24000180140001801000010000000000060000001f9000000c00028008000100bb0538c2240002801400018010000100c000020a11000000003500000c00028008000100bb0538c2'],
  ['delete element inet lpm claims4 { 0.0.0.0 . tcp . 8080, 192.0.2.10 . udp . 53 }', 0,
    '18000180140001801000010000000000060000001f900000180002801400018010000100c000020a1100000000350000'],
  ['delete element inet lpm n_any6 { tcp . 8080 }', 0, '14000180100001800c000100060000001f900000'],
];

describe('elementMessage', () => {
  it.each(NFT_PORTMAP)('words portmap\'s %s as nft 1.0.6 does', (line, flags, elements) => {
    const [op] = parseElementScript(`${line}\n`)!;
    const m = elementMessage(op);
    expect(m.flags ?? 0).toBe(flags);
    expect(m.msg).toBe(line.startsWith('delete') ? 14 : 12);
    expect(attrs(m.attrs)).toEqual([
      [1, Buffer.from('lpm\0')],
      [2, Buffer.from(`${line.split(' ')[4]}\0`)],
      [0x8003, Buffer.from(elements, 'hex')],
    ]);
  });

  it('takes what portmap renders for an ADD and a DEL', () => {
    const ops: PortmapOp[] = [
      { set: 'claims4', key: '0.0.0.0 . tcp . 8080', value: '0xc23805bb', comment: 'net1/abc/eth0', exclusive: true },
      { set: 'n_6c270ef2f251_any4', key: 'tcp . 8080', value: '10.88.0.5 . 80', comment: 'net1/abc/eth0', exclusive: true },
      { set: 'n_6c270ef2f251_targets4', key: '10.88.0.5 . tcp . 80', exclusive: false },
      { set: 'n_6c270ef2f251_hairpin6', key: 'fd00::5 . fd00::5', exclusive: false },
    ];
    const add = parseElementScript(renderAddElements(ops));
    expect(add?.map((l) => [l.verb, l.set, l.elements.length])).toEqual([
      ['create', 'claims4', 1], ['create', 'n_6c270ef2f251_any4', 1], ['add', 'n_6c270ef2f251_targets4', 1], ['add', 'n_6c270ef2f251_hairpin6', 1],
    ]);
    expect(parseElementScript(renderRemoveElements(ops))?.map((l) => l.verb)).toEqual(['add', 'delete', 'delete', 'delete', 'delete']);
  });

  it('words a create as nft 1.0.6 does (less the set id it adds for sets of the same batch)', () => {
    const [op] = parseElementScript('create element inet node_cni_masq masq4 { 10.187.0.41 comment "42da8e94cf0f c1c32801b371441a labxs2/eth0" : jump masq-0f2f086a0202df5e }\n')!;
    const m = elementMessage(op);
    expect(m).toMatchObject({ msg: 12, family: 1, flags: NLM_F.CREATE | NLM_F.EXCL });
    expect(attrs(m.attrs)).toEqual([
      [1, Buffer.from('node_cni_masq\0')],
      [2, Buffer.from('masq4\0')],
      [0x8003, NFT_CREATE_ELEMENTS],
    ]);
  });

  it('words an add without EXCL, and a delete with the key only', () => {
    const [add, del] = parseElementScript('add element inet node_cni_masq masq4 { 10.187.0.41 : jump masq-0f2f086a0202df5e }\ndelete element inet node_cni_masq masq4 { 10.187.0.41 }\n')!;
    expect(elementMessage(add)).toMatchObject({ msg: 12, flags: NLM_F.CREATE });
    const d = elementMessage(del);
    expect(d).toMatchObject({ msg: 14, family: 1 });
    expect(d.flags).toBeUndefined();
    expect(attrs(d.attrs)[2]).toEqual([0x8003, NFT_DELETE_ELEMENTS]);
  });
});

describe('results', () => {
  const ops = parseElementScript('create element inet t m4 { 10.0.0.1 comment "x" : jump c }\ndelete element inet t m4 { 10.0.0.2 }\n')!;
  const kind = (r: { stderr: string }): string => {
    const e = new NftError(r.stderr, '');
    return e.missing ? 'missing' : e.exists ? 'exists' : e.busy ? 'busy' : 'other';
  };

  it('reads like nft: the refused line with its reason, told apart by NftError', () => {
    expect(elementResult(ops, [0, 0])).toEqual({ status: 0, stdout: '', stderr: '' });
    const exists = elementResult(ops, [17, 0]);
    expect(exists).toMatchObject({ status: 1, stderr: `Error: Could not process rule: File exists\n${ops[0].line}\n` });
    expect(kind(exists)).toBe('exists');
    expect(kind(elementResult(ops, [0, 2]))).toBe('missing');
    expect(kind(elementResult(ops, [0, 16]))).toBe('busy');
    expect(kind(elementResult(ops, [95, 0]))).toBe('other');
    expect(elementResult(ops, [0, undefined]).stderr).toContain('no answer from the kernel');
  });

  it('sends one batch and reads each answer by its sequence number', () => {
    const sent: Array<[Buffer, number]> = [];
    const answer = (seq: number, errno: number): Buffer => {
      const b = Buffer.alloc(36);
      b.writeUInt32LE(36, 0);
      b.writeUInt16LE(2, 4); // NLMSG_ERROR
      b.writeUInt32LE(seq, 8);
      b.writeInt32LE(-errno, 16);
      return b;
    };
    const r = runElementBatch(elementBatch(ops)!, (request, acks) => {
      sent.push([request, acks]);
      return Buffer.concat([answer(2, 0), answer(3, 2)]);
    });
    expect(sent).toHaveLength(1);
    expect(sent[0][1]).toBe(2);
    expect(sent[0][0].readUInt16LE(4)).toBe(16); // NFNL_MSG_BATCH_BEGIN
    expect(kind(r)).toBe('missing');
    expect(r.stderr).toContain(ops[1].line);
    // A batch refused whole (an error for BATCH_BEGIN, e.g. EPERM) fails every line.
    expect(runElementBatch(elementBatch(ops)!, () => answer(1, 1)).stderr.match(/Operation not permitted/g)).toHaveLength(2);
  });

  it('splits a long line into messages of 128 elements, and a refused one fails its line', () => {
    const keys = Array.from({ length: 300 }, (_, i) => `10.9.${i >> 8}.${i & 255} . tcp . ${1000 + i}`);
    const lines = parseElementScript(`add element inet t s { ${keys.join(', ')} }\ndelete element inet t m4 { 10.0.0.2 }\n`)!;
    const batch = elementBatch(lines)!;
    expect(batch.lineOf).toEqual([0, 0, 0, 1]);
    expect(batch.seqs).toHaveLength(4);
    const sent = parseElementScript(`add element inet t s { ${keys.slice(128, 256).join(', ')} }\n`)!;
    expect(batch.request.includes(elementMessage(sent[0]).attrs)).toBe(true);
    const ack = (seq: number, errno: number): Buffer => {
      const b = Buffer.alloc(36);
      b.writeUInt32LE(36, 0);
      b.writeUInt16LE(2, 4);
      b.writeUInt32LE(seq, 8);
      b.writeInt32LE(-errno, 16);
      return b;
    };
    const r = runElementBatch(batch, (_request, acks) => {
      expect(acks).toBe(4);
      return Buffer.concat(batch.seqs.map((seq, m) => ack(seq, m === 1 ? 17 : 0)));
    });
    expect(r.stderr).toBe(`Error: Could not process rule: File exists\n${lines[0].line}\n`);
  });

  it('leaves a batch too large for one datagram to libnftables', () => {
    const keys = (n: number): string => Array.from({ length: n }, (_, i) => `fd00::${i.toString(16)} . udp . ${i + 1} comment "net1/${'c'.repeat(64)}/eth0" : 0x80000001`).join(', ');
    expect(elementBatch(parseElementScript(`create element inet t claims6 { ${keys(100)} }\n`)!)).toBeDefined();
    expect(elementBatch(parseElementScript(`create element inet t claims6 { ${keys(2000)} }\n`)!)).toBeUndefined();
  });
});
