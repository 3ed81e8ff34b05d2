// The one rule for names dnsmasq serves (container names, aliases, the domain).

const LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A host name dnsmasq can serve from a hosts file: dot-separated labels of letters, digits, "-" and "_". */
export function validDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => LABEL_RE.test(l));
}
