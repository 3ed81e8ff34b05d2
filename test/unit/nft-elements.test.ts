// lib/firewall/nft-elements.ts: which scripts go over nfnetlink directly, the
// messages (held to what nft 1.0.6 sent for the same lines, captured with
// strace from a bridge ADD and DEL), and nft-like results.
import { NftError } from '../../lib/firewall/nft';
import { elementMessage, elementResult, parseElementScript, runElementOps } from '../../lib/firewall/nft-elements';
import { renderMasqCreate, renderMasqDel, renderMasqTakeover, renderMasqDeclare } from '../../lib/firewall/masquerade';
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
    expect(create?.map((o) => [o.verb, o.table, o.set, o.key.length, o.jump !== undefined, o.comment !== undefined])).toEqual([
      ['create', 'node_cni_masq', 'masq4', 4, true, true],
      ['create', 'node_cni_masq', 'masq6', 16, true, true],
    ]);
    expect(parseElementScript(renderMasqTakeover(owner, entries))?.map((o) => o.verb)).toEqual(['add', 'delete', 'add', 'add', 'delete', 'add']);
    const del = parseElementScript(renderMasqDel(['10.187.0.41', 'fd00:1::29']));
    expect(del?.map((o) => [o.verb, o.key.toString('hex')])).toEqual([['delete', '0abb0029'], ['delete', 'fd000001000000000000000000000029']]);
  });

  it.each([
    ['a structure declaration', renderMasqDeclare(owner, entries)],
    ['a rule', 'add rule inet t c masquerade\n'],
    ['an element with a concatenated key', 'add element inet t s { 10.0.0.1 . tcp . 80 : jump c }\n'],
    ['a key that is no address', 'delete element inet t s { 10.0.0.300 }\n'],
    ['a comment with a quote', 'add element inet t s { 10.0.0.1 comment "a\\"b" : jump c }\n'],
    ['a comment longer than nft takes', `add element inet t s { 10.0.0.1 comment "${'x'.repeat(129)}" : jump c }\n`],
    ['a delete with data', 'delete element inet t s { 10.0.0.1 : jump c }\n'],
    ['another family', 'delete element ip t s { 10.0.0.1 }\n'],
    ['an empty script', '\n'],
  ])('leaves %s to libnftables', (_what, script) => {
    expect(parseElementScript(script)).toBeUndefined();
  });
});

describe('elementMessage', () => {
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
    const r = runElementOps(ops, (request, acks) => {
      sent.push([request, acks]);
      return Buffer.concat([answer(2, 0), answer(3, 2)]);
    });
    expect(sent).toHaveLength(1);
    expect(sent[0][1]).toBe(2);
    expect(sent[0][0].readUInt16LE(4)).toBe(16); // NFNL_MSG_BATCH_BEGIN
    expect(kind(r)).toBe('missing');
    expect(r.stderr).toContain(ops[1].line);
    // A batch refused whole (an error for BATCH_BEGIN, e.g. EPERM) fails every line.
    expect(runElementOps(ops, () => answer(1, 1)).stderr.match(/Operation not permitted/g)).toHaveLength(2);
  });
});
