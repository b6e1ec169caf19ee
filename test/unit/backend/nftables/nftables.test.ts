// What the native nftables backend's clean removes, from the ruleset it read: our table, named, and nothing else.
import t from 'tap'
import { removalOf } from '../../../../src/backend/nftables/nftables.js'
import { EnvironmentError } from '../../../../src/errors.js'
import { managedTables, splitRuleset } from '../../../../src/path/from-nft.js'

const ruleset = (text: string) => ({ tables: splitRuleset(text), managed: managedTables('') })
const OURS =
  'table inet sidecar_redirect {\n\tcomment "sidecar-redirect/table"\n\tchain output {\n\t\ttype nat hook output priority dstnat; policy accept;\n\t}\n}\n'
const FOREIGN = 'table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n'
const DELETE = 'table inet sidecar_redirect {}\ndelete table inet sidecar_redirect\n'

const ROWS = [
  { name: 'an empty ruleset', text: '', removal: undefined },
  { name: 'foreign tables only', text: FOREIGN, removal: undefined },
  { name: 'our table alone', text: OURS, removal: DELETE },
  { name: 'our table among foreign ones', text: FOREIGN + OURS + FOREIGN.replace('inet filter', 'ip nat'), removal: DELETE },
] as const

for (const row of ROWS) {
  t.test(`clean, ${row.name}: ${row.removal === undefined ? 'nothing sent' : 'our table deleted, by name'}`, async t => {
    t.equal(removalOf(ruleset(row.text)), row.removal)
  })
}

t.test('a table with our name but not our comment is refused, nothing sent', async t => {
  t.throws(() => removalOf(ruleset(OURS.replace('\tcomment "sidecar-redirect/table"\n', ''))), EnvironmentError)
})
