// The one error type of the project. Everything that can fail throws a
// CniError (or something the skel maps to 999); only the skel prints it.

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  InvalidNetns: 8,
  TryAgainLater: 11,
  NotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | number;

export interface CniErrorObject {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  readonly code: number;
  readonly details?: string;

  /** `options.cause`: the error this one wraps (kept for logs; never printed to the runtime). */
  constructor(code: ErrorCodeValue, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  toJSON(cniVersion?: string): CniErrorObject {
    const out: CniErrorObject = { code: this.code, msg: this.message };
    if (cniVersion) out.cniVersion = cniVersion;
    if (this.details) out.details = this.details;
    return out;
  }

  /** Rebuild an error object a delegated plugin printed, so it passes up unchanged. */
  static fromObject(obj: CniErrorObject): CniError {
    return new CniError(obj.code, obj.msg, obj.details);
  }
}

export function invalidConfig(msg: string, details?: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg, details);
}

/**
 * ADD for an attachment that already exists (the container has an interface
 * named CNI_IFNAME, or IPAM holds an address for it): the runtime sent a
 * second ADD without a DEL (SPEC: it must not). Code 4: CNI_CONTAINERID /
 * CNI_IFNAME name something that already exists. The same code in every plugin.
 */
export function attachmentExists(msg: string, details?: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, msg, details ?? 'CNI_IFNAME names an interface the container already has: DEL it first (a runtime must not ADD one attachment twice)');
}

/** Wrap anything thrown into a CniError, keeping one that already is. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) return new CniError(ErrorCode.Internal, err.message);
  return new CniError(ErrorCode.Internal, String(err));
}
