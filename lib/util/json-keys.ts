// JSON.parse keeps the last of two equal keys without a word. Where a
// repeated key is ambiguous config (tuning's "sysctl", like the reference),
// this finds the keys of one object as written. Pure; expects text that
// JSON.parse already accepted.

/** The keys, as written and in order, of the object at `path` (object keys from the top); undefined if not an object there. */
export function keysAsWritten(text: string, path: readonly string[]): string[] | undefined {
  let i = 0;
  const ws = (): void => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  // Skip one value; for an object at the wanted depth, return its keys.
  const value = (depth: number): string[] | undefined => {
    ws();
    const c = text[i];
    if (c === '"') { str(); return undefined; }
    if (c === '[') {
      i++;
      for (ws(); text[i] !== ']'; ws()) { value(-1); ws(); if (text[i] === ',') i++; }
      i++;
      return undefined;
    }
    if (c === '{') {
      i++;
      const keys: string[] = [];
      let found: string[] | undefined;
      for (ws(); text[i] !== '}'; ws()) {
        const k = str();
        keys.push(k);
        ws();
        i++; // ':'
        const inner = value(depth >= 0 && depth < path.length && k === path[depth] ? depth + 1 : -1);
        if (inner) found = inner;
        ws();
        if (text[i] === ',') i++;
      }
      i++;
      return depth === path.length ? keys : found;
    }
    while (i < text.length && !',]} \t\n\r'.includes(text[i])) i++; // number, true, false, null
    return undefined;
  };
  return value(0);
}

/** The keys that appear more than once in the object at `path`. */
export function repeatedKeys(text: string, path: readonly string[]): string[] {
  const keys = keysAsWritten(text, path) ?? [];
  return [...new Set(keys.filter((k, n) => keys.indexOf(k) !== n))];
}
