// Ethernet MAC addresses: one parser for each spelling we take, and one
// canonical form, lower case with colons ("02:ab:cd:ef:00:01"), which the
// kernel reports, results carry and records keep.

const COLON_MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Six colon-separated hex pairs, any case, as canonical; undefined otherwise (the CNI `mac` capability, records). */
export function parseColonMac(text: string): string | undefined {
  return COLON_MAC.test(text) ? text.toLowerCase() : undefined;
}

/**
 * An Ethernet MAC in any spelling Go's net.ParseMAC takes for 6 bytes
 * ("02:AB:..", "02-ab-..", "02ab.cdef.0001"), as canonical; undefined otherwise.
 */
export function normalizeMac(text: string): string | undefined {
  let hex: string[] | undefined;
  if (/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(text) && new Set(text.replace(/[0-9a-fA-F]/g, '')).size === 1) hex = text.split(/[:-]/);
  else if (/^([0-9a-fA-F]{4}\.){2}[0-9a-fA-F]{4}$/.test(text)) hex = text.replace(/\./g, '').match(/../g) ?? undefined;
  return hex?.map((h) => h.toLowerCase()).join(':');
}
