// A model of what `iptables-restore --noflush` does to -save text, for the few forms our payloads use: a section per
// table, `:CHAIN - [0:0]` (make it, or flush it), `-D CHAIN spec` (the first rule that matches), `-I CHAIN n spec`,
// `-A`, `-X CHAIN` (only an empty chain nothing jumps to). Unit tests apply a payload to a read with it and compare
// the text, so "rollback restores what was read" is checked to the byte without a kernel; the kernel tests check the
// same on real rules. Built-in chains keep their policy line and print first, the others by name.

const BUILT_IN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

interface Table {
  readonly chains: string[]
  readonly heads: Map<string, string>
  readonly rules: Map<string, string[]>
}

const parse = (text: string): Map<string, Table> => {
  const tables = new Map<string, Table>()
  let table: Table | undefined
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = { chains: [], heads: new Map(), rules: new Map() }
      tables.set(line.slice(1), table)
    } else if (table && line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!
      table.chains.push(name)
      table.heads.set(name, line)
      table.rules.set(name, [])
    } else if (table && line.startsWith('-A ')) table.rules.get(line.split(' ')[1]!)!.push(line)
  }
  return tables
}

// Built-in chains first, then the others by name, as iptables-legacy-save prints them.
const ordered = (chains: readonly string[]): string[] => [...chains.filter(c => BUILT_IN.has(c)), ...chains.filter(c => !BUILT_IN.has(c)).sort()]

const render = (tables: ReadonlyMap<string, Table>): string =>
  [...tables]
    .flatMap(([name, t]) => [
      `*${name}`,
      ...ordered(t.chains).map(c => t.heads.get(c)!),
      ...ordered(t.chains).flatMap(c => t.rules.get(c)!),
      'COMMIT',
    ])
    .map(l => `${l}\n`)
    .join('')

/** restore applies a --noflush payload to -save text and returns the text -save would then print; throws where iptables would refuse. */
export const restore = (saved: string, payload: string): string => {
  const tables = parse(saved)
  let table: Table | undefined
  for (const line of payload.split('\n')) {
    if (line === '' || line === 'COMMIT') continue
    if (line.startsWith('*')) {
      const name = line.slice(1)
      if (!tables.has(name)) tables.set(name, { chains: [], heads: new Map(), rules: new Map() })
      table = tables.get(name)!
      continue
    }
    if (!table) throw new Error(`no table for: ${line}`)
    const words = line.split(' ')
    const chain = line.startsWith(':') ? line.slice(1).split(' ')[0]! : words[1]!
    const rules = table.rules.get(chain)
    if (line.startsWith(':')) {
      if (rules) rules.length = 0
      else {
        table.chains.push(chain)
        table.heads.set(chain, `:${chain} - [0:0]`)
        table.rules.set(chain, [])
      }
    } else if (!rules && BUILT_IN.has(chain)) {
      // A table's built-in chains exist once the table does (iptables-nft makes the one a rule needs).
      table.chains.splice(table.chains.filter(c => BUILT_IN.has(c)).length, 0, chain)
      table.heads.set(chain, `:${chain} ACCEPT [0:0]`)
      table.rules.set(
        chain,
        [line.replace(/^-I (\S+) \d+ /, '-A $1 ')].filter(() => words[0] !== '-D'),
      )
      if (words[0] !== '-A' && words[0] !== '-I') throw new Error(`no such rule: ${line}`)
    } else if (!rules) throw new Error(`no chain ${chain}: ${line}`)
    else if (words[0] === '-A') rules.push(line)
    else if (words[0] === '-D') {
      const at = rules.indexOf(line.replace(/^-D /, '-A '))
      if (at < 0) throw new Error(`no such rule: ${line}`)
      rules.splice(at, 1)
    } else if (words[0] === '-I') {
      const at = Number(words[2])
      if (at > rules.length + 1) throw new Error(`index of insertion too big: ${line}`)
      rules.splice(at - 1, 0, `-A ${chain} ${words.slice(3).join(' ')}`)
    } else if (words[0] === '-X') {
      const used = [...table.rules.values()].flat().some(r => / -[jg] (\S+)/.exec(r)?.[1] === chain)
      if (rules.length > 0 || used) throw new Error(`chain ${chain} is not empty or is used: ${line}`)
      table.chains.splice(table.chains.indexOf(chain), 1)
      table.rules.delete(chain)
      table.heads.delete(chain)
    } else throw new Error(`not modelled: ${line}`)
  }
  return render(tables)
}

/** normal: -save text as restore prints it, for comparing a read with a result. */
export const normal = (saved: string): string => render(parse(saved))
