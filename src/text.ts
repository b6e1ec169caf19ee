// Small text forms used all over: written once, so every message and rule spells them the same way.

/** A number as 0x hex, the form the classid and mark settings take and iptables prints marks in. */
export const hex = (n: number | bigint): string => `0x${n.toString(16)}`

/** A port range as `from` alone, or `from<sep>to` (iptables writes `:`, nft and our settings `-`). */
export const portRangeText = (r: { readonly from: number; readonly to: number }, separator: '-' | ':'): string =>
  r.from === r.to ? `${r.from}` : `${r.from}${separator}${r.to}`

/** The first line of a tool's stderr: the one that says what went wrong. */
export const firstLine = (text: string): string => text.trim().split('\n')[0] ?? ''

/** What a caught value says, whatever was thrown. */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))
