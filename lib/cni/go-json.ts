// Go's encoding/json matches object keys to struct fields case-insensitively,
// and runtimes rely on it: containerd's CRI (go-cni, every version) marshals
// capability values from structs without json tags, so a plugin gets
// runtimeConfig.portMappings = [{"HostPort":8080,"ContainerPort":80,
// "Protocol":"tcp","HostIP":""}] and dns = {"Servers":[...]}. The reference
// plugins decode those into their lower-case fields; so must we.

/**
 * The object with its keys renamed to the `fields` they match the way
 * encoding/json matches them: an exact match first, else equal ignoring case.
 * Keys that match no field are kept as they are. As in Go, a later key that
 * lands on the same field wins.
 */
export function goFields<F extends string>(raw: Readonly<Record<string, unknown>>, fields: readonly F[]): Record<string, unknown> {
  const byFold = new Map(fields.map((f) => [f.toLowerCase(), f]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const field = (fields as readonly string[]).includes(key) ? key : byFold.get(key.toLowerCase()) ?? key;
    out[field] = value;
  }
  return out;
}
