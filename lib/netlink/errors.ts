// The one error type of the facade. node-netlink rejects with
// `Error("Request rejected: EEXIST")` or an ErrnoException; we read the errno
// from the kernel's NLMSG_ERROR ourselves and never let those leak.
import { constants } from 'os';

export type Errno = 'EEXIST' | 'ENODEV' | 'ENOENT' | 'EBUSY' | 'EINVAL' | 'ERANGE' | 'EPERM' | 'EOPNOTSUPP' | 'EADDRNOTAVAIL' | 'ENETUNREACH' | 'EAFNOSUPPORT' | 'ETIMEDOUT' | 'EINTR' | 'ESRCH' | string;

// Node's table lacks EXFULL (54), which a bridge answers when all its 1023 ports are taken.
const errnoNames = new Map<number, string>([[54, 'EXFULL'], ...Object.entries(constants.errno).map(([k, v]) => [v, k] as [number, string])]);

export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `errno ${Math.abs(errno)}`;
}

export class NetlinkError extends Error {
  constructor(readonly code: Errno, message: string, readonly errno?: number) {
    super(message);
    this.name = 'NetlinkError';
  }
}

/** The object already exists (create twice, address or route already there). */
export function isExists(e: unknown): boolean {
  return e instanceof NetlinkError && e.code === 'EEXIST';
}

/** The object is gone: no such link (ENODEV), address/route/neighbour (ENOENT, EADDRNOTAVAIL, ESRCH). */
export function isNotFound(e: unknown): boolean {
  return e instanceof NetlinkError && ['ENODEV', 'ENOENT', 'EADDRNOTAVAIL', 'ESRCH'].includes(e.code);
}

// The kernel ran short of buffers or memory, was interrupted or busy: the same request may pass when repeated.
const TRANSIENT = new Set(['ENOBUFS', 'ENOMEM', 'EAGAIN', 'EINTR', 'EBUSY']);

/** A failure worth a retry, as against a refusal every retry would meet again. */
export function isTransient(e: unknown): boolean {
  return e instanceof NetlinkError && TRANSIENT.has(e.code);
}

/** Build the error for a kernel-rejected request: `creating veth "veth1": EEXIST (File exists)`. */
export function kernelError(errno: number, what: string): NetlinkError {
  const code = errnoName(errno);
  return new NetlinkError(code, `${what}: ${code}${describe(code)}`, Math.abs(errno));
}

const hints: Record<string, string> = {
  EEXIST: 'already exists',
  ENODEV: 'no such device',
  ENOENT: 'not found',
  EBUSY: 'busy',
  EINVAL: 'invalid argument',
  ERANGE: 'out of range',
  EPERM: 'not permitted',
  EOPNOTSUPP: 'not supported by this kernel',
  EADDRNOTAVAIL: 'address not available',
  ENETUNREACH: 'network unreachable',
  EXFULL: 'full: a bridge takes at most 1023 ports',
};
function describe(code: string): string {
  return hints[code] ? ` (${hints[code]})` : '';
}

/** Anything thrown by node-netlink itself (send failure, timeout) as a NetlinkError. */
export function toNetlinkError(err: unknown, what: string): NetlinkError {
  if (err instanceof NetlinkError) return err;
  const e = err as NodeJS.ErrnoException;
  const m = /Request rejected: (E[A-Z]+)/.exec(String(e?.message ?? err));
  const code = m?.[1] ?? (typeof e?.code === 'string' ? e.code : 'EIO');
  return new NetlinkError(code, `${what}: ${code}${describe(code)}${m || e?.code ? '' : ` (${String(e?.message ?? err)})`}`);
}
