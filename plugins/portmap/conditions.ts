// portmap's conditionsV4/V6 (pure). The reference takes them as a list of
// tokens in the syntax of its backend: iptables when the first token starts
// with "-" or "!" (["!", "-d", "192.0.2.0/24"]), nft otherwise
// (["ip", "daddr", "!=", "192.0.2.0/24"]). Ours is nftables either way, so
// iptables conditions are translated, for the matches that have a plain nft
// equivalent; anything else is refused with code 7 naming the token.

import { invalidConfig } from '../../lib/cni/errors';
import { addressText, formatCidr, networkText, parseCidr, parseIP, type Family } from '../../lib/ip';

/** The reference's rule: the backend a condition list is written for, from its first token. */
export function conditionsSyntax(tokens: readonly string[]): 'iptables' | 'nftables' | undefined {
  const first = tokens[0]?.trim();
  if (!first) return undefined;
  return first.startsWith('-') || first.startsWith('!') ? 'iptables' : 'nftables';
}

/** nft tokens: one match expression per list, spliced into our rules, so nothing may end it or start another. */
export function checkNftConditions(tokens: readonly string[], field: string): string[] {
  for (const t of tokens) {
    if (/[;\n\r#]/.test(t)) throw invalidConfig(`${field} entry ${JSON.stringify(t)} must be part of a single nft match expression (no ";", "#" or newline)`);
  }
  return tokens.map((t) => t.trim()).filter((t) => t !== '');
}

const SUPPORTED = '-s/--source, -d/--destination, -i/--in-interface, -m addrtype --src-type/--dst-type, -m iprange --src-range/--dst-range, -m comment, each optionally negated with "!"';

/** iptables address types → nft fib types (the same kernel RTN_* names). */
const ADDR_TYPES = new Set(['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit']);

class Tokens {
  private i = 0;
  constructor(private readonly list: string[], private readonly field: string) {}
  get done(): boolean { return this.i >= this.list.length; }
  peek(): string | undefined { return this.list[this.i]; }
  next(what: string): string {
    const t = this.list[this.i++];
    if (t === undefined) throw invalidConfig(`${this.field}: iptables condition ends where ${what} was expected`);
    return t;
  }
  negation(): boolean {
    if (this.peek() !== '!') return false;
    this.i++;
    return true;
  }
}

function dottedMaskPrefix(mask: string): number | undefined {
  const m = parseIP(mask);
  if (!m || m.family !== 4) return undefined;
  const bits = m.value.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) return undefined;
  return bits.includes('0') ? bits.indexOf('0') : 32;
}

/** "10.0.0.0/8", "10.0.0.1", "10.0.0.0/255.0.0.0", comma lists; of the list's family only. */
function addressList(text: string, family: Family, field: string): string {
  const items = text.split(',').map((a) => {
    const [ip, mask] = a.split('/');
    const prefix = mask !== undefined && mask.includes('.') ? dottedMaskPrefix(mask) : undefined;
    const cidr = parseCidr(prefix !== undefined ? `${ip}/${prefix}` : a, { allowBare: true });
    if (!cidr) throw invalidConfig(`${field}: ${JSON.stringify(a)} is not an IP address or prefix (host names are not resolved)`);
    if (cidr.addr.family !== family) throw invalidConfig(`${field}: ${JSON.stringify(a)} is not an IPv${family} address`);
    const text = formatCidr(cidr);
    return cidr.prefix === (family === 4 ? 32 : 128) ? addressText(text) : networkText(text);
  });
  return items.length === 1 ? items[0] : `{ ${items.join(', ')} }`;
}

function addressRange(text: string, family: Family, field: string): string {
  const [from, to, extra] = text.split('-');
  const a = parseIP(from);
  const b = parseIP(to);
  if (extra !== undefined || !a || !b || a.family !== family || b.family !== family) {
    throw invalidConfig(`${field}: ${JSON.stringify(text)} is not an IPv${family} range "FROM-TO"`);
  }
  return `${from}-${to}`;
}

function interfaceName(text: string, field: string): string {
  // iptables "eth+" is a prefix match: nft "eth*".
  const wildcard = text.endsWith('+');
  const name = wildcard ? text.slice(0, -1) : text;
  if (!/^[A-Za-z0-9_.@-]{0,15}$/.test(name) || (!wildcard && name === '')) throw invalidConfig(`${field}: ${JSON.stringify(text)} is not an interface name`);
  return `"${name}${wildcard ? '*' : ''}"`;
}

function refuse(field: string, token: string): never {
  throw invalidConfig(
    `${field}: the iptables condition ${JSON.stringify(token)} has no nftables translation here (this portmap is nftables-only; it translates ${SUPPORTED}); ` +
    'write the condition in nft syntax instead, e.g. ["ip", "saddr", "!=", "192.0.2.0/24"]',
  );
}

/** One "-m <module>" block: its options up to the next match. */
function moduleMatch(t: Tokens, family: Family, field: string, out: string[]): void {
  const mod = t.next('a match module name');
  const ip = family === 4 ? 'ip' : 'ip6';
  switch (mod) {
    case 'comment':
      if (t.next('--comment') !== '--comment') refuse(field, `-m comment ${mod}`);
      t.next('the comment text');
      return;
    case 'addrtype':
    case 'iprange': {
      let any = false;
      while (!t.done) {
        const neg = t.peek() === '!' ? (t.negation(), true) : false;
        const opt = t.peek();
        const known = mod === 'addrtype' ? ['--src-type', '--dst-type'] : ['--src-range', '--dst-range'];
        if (!opt || !known.includes(opt)) {
          if (neg) refuse(field, `! ${opt ?? ''}`);
          break;
        }
        t.next(opt);
        const value = t.next(`the value of ${opt}`);
        const op = neg ? '!= ' : '';
        if (mod === 'addrtype') {
          const types = value.toLowerCase().split(',');
          if (types.some((x) => !ADDR_TYPES.has(x))) throw invalidConfig(`${field}: unknown address type ${JSON.stringify(value)} for ${opt}`);
          out.push(`fib ${opt === '--src-type' ? 'saddr' : 'daddr'} type ${op}${types.length > 1 ? `{ ${types.join(', ')} }` : types[0]}`);
        } else {
          out.push(`${ip} ${opt === '--src-range' ? 'saddr' : 'daddr'} ${op}${addressRange(value, family, field)}`);
        }
        any = true;
      }
      if (!any) refuse(field, `-m ${mod}`);
      return;
    }
    default:
      refuse(field, `-m ${mod}`);
  }
}

/**
 * iptables condition tokens → nft match expressions, e.g.
 * ["!", "-d", "192.0.2.0/24"] → ["ip daddr != 192.0.2.0/24"].
 * An entry that starts with an option and holds several words
 * ("! -d 192.0.2.0/24") is split into tokens; others (a comment's text) stay whole.
 */
export function translateIptablesConditions(entries: readonly string[], family: Family, field: string): string[] {
  const t = new Tokens(entries.flatMap((e) => (/^\s*[-!]/.test(e) ? e.trim().split(/\s+/) : [e])).filter((e) => e.trim() !== ''), field);
  const ip = family === 4 ? 'ip' : 'ip6';
  const out: string[] = [];
  while (!t.done) {
    const neg = t.negation();
    const opt = t.next('an option after "!"');
    const op = neg ? '!= ' : '';
    switch (opt) {
      case '-s': case '--source': case '--src':
        out.push(`${ip} saddr ${op}${addressList(t.next(`the address of ${opt}`), family, field)}`);
        break;
      case '-d': case '--destination': case '--dst':
        out.push(`${ip} daddr ${op}${addressList(t.next(`the address of ${opt}`), family, field)}`);
        break;
      case '-i': case '--in-interface':
        out.push(`iifname ${op}${interfaceName(t.next(`the interface of ${opt}`), field)}`);
        break;
      case '-m': case '--match':
        if (neg) refuse(field, `! ${opt}`);
        moduleMatch(t, family, field, out);
        break;
      default:
        refuse(field, neg ? `! ${opt}` : opt);
    }
  }
  return out;
}
