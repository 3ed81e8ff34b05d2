// What a Linux interface name may be (the kernel's dev_valid_name; Go's
// ValidateInterfaceName, which the reference applies to CNI_IFNAME): one
// rule for CNI_IFNAME, names in configs (bridge, master, vxlanDevice, ...)
// and every name the netlink facade sends.

/** The kernel's buffer, NUL included: a name has at most 15 bytes. */
export const IFNAMSIZ = 16;

/** Why `name` cannot name an interface, or undefined when it can. */
export function ifnameProblem(name: string): string | undefined {
  if (name === '') return 'interface name is empty';
  if (Buffer.byteLength(name) >= IFNAMSIZ) return 'interface name is longer than 15 bytes';
  if (name === '.' || name === '..') return 'interface name is "." or ".."';
  if (/[/:]/.test(name)) return 'interface name contains "/" or ":"';
  // \s covers Unicode spaces; Go's unicode.IsSpace also counts U+0085.
  if (/[\s\u0085]/u.test(name)) return 'interface name contains whitespace';
  return undefined;
}

export function isValidIfname(name: string): boolean {
  return ifnameProblem(name) === undefined;
}
