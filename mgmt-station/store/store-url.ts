/** Store URLs (open-store.ts), read the same way wherever a station names or locates its store. */

/** The file of an SQLite store URL (`sqlite:PATH`, `sqlite:///abs`; `:memory:` as given); null for any other URL. */
export function sqlitePathOf(url: string): string | null {
  return typeof url === 'string' && url.startsWith('sqlite:') ? url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '') : null;
}

/** `url` with its password, if any, shown as *** (for messages and files; the store's own `url` is this too). */
export function redactedStoreUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url; // not a URL openStore would take either: it says so
  }
}
