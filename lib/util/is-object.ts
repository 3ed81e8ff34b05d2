// The type guard every config parser starts with: a JSON object, not null
// and not an array (both are typeof "object").

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
