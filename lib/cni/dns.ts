// The "dns" field of a network config (the result's DNS, spec "dns"):
// checked field by field, so a value of the wrong type is code 7 naming it
// instead of a result no runtime can read. Shared by every plugin that
// returns it (bridge, macvlan, vxlan-overlay).

import { CniError, ErrorCode } from './errors';
import type { Dns } from './types';
import { show } from '../util/show';
import { isObject } from '../util/is-object';

/** undefined when absent; otherwise a fresh object with only the known, checked fields (empty lists dropped). */
export function parseConfigDns(v: unknown, plugin: string): Dns | undefined {
  if (v === undefined || v === null) return undefined;
  const bad = (msg: string) => new CniError(ErrorCode.InvalidConfig, `${plugin}: ${msg}`);
  if (!isObject(v)) throw bad(`"dns" must be an object, got ${show(v)}`);
  const d = v as Record<string, unknown>;
  const list = (k: string): string[] | undefined => {
    if (d[k] === undefined || d[k] === null) return undefined;
    if (!Array.isArray(d[k]) || !(d[k] as unknown[]).every((x) => typeof x === 'string')) throw bad(`"dns.${k}" must be a list of strings, got ${show(d[k])}`);
    return [...(d[k] as string[])];
  };
  if (d.domain !== undefined && d.domain !== null && typeof d.domain !== 'string') throw bad(`"dns.domain" must be a string, got ${show(d.domain)}`);
  const out: Dns = {};
  const ns = list('nameservers');
  const search = list('search');
  const options = list('options');
  if (ns?.length) out.nameservers = ns;
  if (d.domain) out.domain = d.domain as string;
  if (search?.length) out.search = search;
  if (options?.length) out.options = options;
  return out;
}
