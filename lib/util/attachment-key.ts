// One file name per attachment, for every per-attachment file we keep
// (bridge/overlay records, DNS hosts files). Joining the container ID and the
// ifname with a separator both may contain collides ("a"+"e.x" and "a.e"+"x"
// gave one name) and a long container ID overflows NAME_MAX (the reference
// accepts IDs of any length): a hash of the whole (network, container ID,
// ifname) triple has neither problem. The triple is kept inside the file and
// checked on read, so a file is only ever taken for the attachment it names.

import { sha256Hex } from './hash';

export interface AttachmentId {
  network: string;
  containerId: string;
  ifname: string;
}

/** 128 bits of sha256 over the NUL-joined triple (NUL is in none of the three). */
export function attachmentHash(a: AttachmentId): string {
  return sha256Hex(`${a.network}\0${a.containerId}\0${a.ifname}`).slice(0, 32);
}

/** "<first 12 characters of the container ID>-<hash>": readable in a listing, unique by the hash. */
export function attachmentKey(a: AttachmentId): string {
  return `${a.containerId.slice(0, 12)}-${attachmentHash(a)}`;
}

export function sameAttachment(a: AttachmentId, b: Partial<AttachmentId>): boolean {
  return a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;
}
