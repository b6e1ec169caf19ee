// One order for sorted text (set members, elements): by UTF-16 code units, the order Array#sort uses by default.
// With this comparator V8 sorts large sets several times faster than sort() without one (docs/performance.md),
// which first turns every element into a string and compares them through a slower generic path.

export const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
