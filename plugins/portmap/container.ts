// Publishing for a container that may be on several networks
// (./publications.ts decides which network answers a host port): under the
// container's lock, an ADD claims its host ports for the container and takes
// over the ports it now answers from another network of the container; a DEL
// hands the ports it answered to the next network and gives up the claims
// no other network of the container needs. Each change is one nft
// transaction (./kernel.ts applyChange).

import { planElements, type ElementOp, type PortmapAttachment, type PortmapNetwork } from '../../lib/firewall/portmap';
import { applyChange, type Change } from './kernel';
import { answering, claimKey, handovers, nextOrder, samePublication, type Publication } from './publications';
import { otherPublications, removeRecord, withContainer, writeRecord, type AttachmentRecord } from './store';

function publicationOf(rec: AttachmentRecord): Publication {
  return { network: rec.network, ifname: rec.ifname, order: rec.order ?? 0, metrics: rec.metrics ?? {}, entries: rec.entries };
}

const isDnat = (op: ElementOp): boolean => /_(any|ip)[46]$/.test(op.set);

/** The DNAT elements by which `rec` answers the host port `key`. */
function answerOps(rec: AttachmentRecord, key: string): ElementOp[] {
  return planElements(rec, { claimBy: 'container', claims: () => false, answers: (e) => claimKey(e) === key }).filter(isDnat);
}

/** The elements that come with a handover to each of `recs`, merged per network. */
function takeOvers(recs: readonly AttachmentRecord[], keys: ReadonlyArray<{ key: string; to: Publication }>): Change['add'] {
  const byNetwork = new Map<string, { net: PortmapNetwork; ops: ElementOp[] }>();
  for (const { key, to } of keys) {
    const rec = recs.find((r) => samePublication(r, to));
    if (!rec?.net) continue;
    const slot = byNetwork.get(rec.network) ?? { net: rec.net, ops: [] };
    slot.ops.push(...answerOps(rec, key));
    byNetwork.set(rec.network, slot);
  }
  return [...byNetwork.values()];
}

/** What a version-2 record publishes now: its claims, the DNAT elements of the ports it answers, its masquerade sets (CHECK, no lock). */
export function currentElements(dataDir: string, rec: AttachmentRecord): ElementOp[] {
  const me = publicationOf(rec);
  const answers = answering([...otherPublications(dataDir, rec.containerID, rec.network, rec.ifname).map(publicationOf), me]);
  return planElements(rec, { claimBy: 'container', answers: (e) => samePublication(answers.get(claimKey(e))!, me) });
}

/**
 * ADD: record the attachment (first, so DEL finds what follows), join the
 * container's publications, then one transaction: the DNAT elements of the
 * ports it takes over go from their network, its claims and elements come.
 * On failure the record and the membership go again.
 */
export async function publishForContainer(dataDir: string, net: PortmapNetwork, att: PortmapAttachment, metrics: Publication['metrics']): Promise<void> {
  await withContainer(dataDir, att.containerID, async (c) => {
    const others = c.others(att.network, att.ifname);
    const pubs = others.map(publicationOf);
    const me: Publication = { network: att.network, ifname: att.ifname, order: nextOrder(pubs), metrics, entries: att.entries };
    const answers = answering([...pubs, me]);
    const remove = handovers(pubs, [...pubs, me]).flatMap((h) => {
      const from = h.from && others.find((r) => samePublication(r, h.from!));
      return from ? answerOps(from, h.key) : [];
    });
    const add = [{ net, ops: planElements(att, { claimBy: 'container', answers: (e) => samePublication(answers.get(claimKey(e))!, me) }) }];
    writeRecord(dataDir, att, { order: me.order, metrics, net });
    c.add(att.network, att.ifname);
    try {
      await applyChange({ remove, add });
    } catch (err) {
      c.remove(att.network, att.ifname);
      removeRecord(dataDir, att.network, att.containerID, att.ifname);
      throw err;
    }
  });
}

/**
 * DEL, GC, a repeated ADD: one transaction takes the attachment's elements
 * out (its claims only where no other network of the container publishes
 * the port) and hands each port it answered to the next network. The record
 * goes only when that worked, so a retried DEL can finish. Returns the errors.
 */
export async function releaseForContainer(dataDir: string, rec: AttachmentRecord): Promise<string[]> {
  return withContainer(dataDir, rec.containerID, async (c) => {
    const others = c.others(rec.network, rec.ifname);
    const pubs = others.map(publicationOf);
    const me = publicationOf(rec);
    const before = answering([...pubs, me]);
    const after = answering(pubs);
    const remove = planElements(rec, {
      claimBy: 'container',
      answers: (e) => samePublication(before.get(claimKey(e))!, me),
      claims: (e) => !after.has(claimKey(e)),
    });
    const to = handovers([...pubs, me], pubs).flatMap((h) => (h.to ? [{ key: h.key, to: h.to }] : []));
    try {
      await applyChange({ remove, add: takeOvers(others, to) });
    } catch (err) {
      return [(err as Error).message];
    }
    removeRecord(dataDir, rec.network, rec.containerID, rec.ifname);
    c.remove(rec.network, rec.ifname);
    return [];
  });
}
