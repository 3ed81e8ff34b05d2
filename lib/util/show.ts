// A short, bounded rendering of any value for error messages. JSON.stringify
// recurses without a bound (a config value nested a few thousand levels deep
// overflows the stack) and has no length limit (a 1 MB string would end up in
// the error object): this walks at most a few levels and cuts long text.

const MAX_TEXT = 120;
const MAX_DEPTH = 3;
const MAX_ITEMS = 8;

function cut(text: string, max = MAX_TEXT): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} chars)`;
}

function render(v: unknown, depth: number): string {
  if (v === undefined) return 'undefined';
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(cut(v));
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) {
    if (depth >= MAX_DEPTH) return v.length ? '[…]' : '[]';
    const items = v.slice(0, MAX_ITEMS).map((x) => render(x, depth + 1));
    if (v.length > MAX_ITEMS) items.push(`…(${v.length} items)`);
    return `[${items.join(',')}]`;
  }
  if (typeof v === 'object') {
    const keys = Object.keys(v as object);
    if (depth >= MAX_DEPTH) return keys.length ? '{…}' : '{}';
    const items = keys.slice(0, MAX_ITEMS).map((k) => `${JSON.stringify(cut(k, 40))}:${render((v as Record<string, unknown>)[k], depth + 1)}`);
    if (keys.length > MAX_ITEMS) items.push(`…(${keys.length} keys)`);
    return `{${items.join(',')}}`;
  }
  return typeof v;
}

/** JSON-like text of `v`, at most a few levels deep and a few hundred characters long. */
export function show(v: unknown): string {
  return cut(render(v, 0), 400);
}
