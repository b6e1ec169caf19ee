// The iptables backends behind the RuleBackend interface: one restore per family (see apply.ts), read back with
// -save, cleaned by removing our chains and jumps family by family.

import { renderState, renderTransaction, EMPTY_STATE } from '../plan/render-iptables.js'
import type { Plan } from '../plan/types.js'
import { compareState } from '../verify/compare.js'
import { applyFamilies, readOwned, type FamilyTarget } from './apply.js'
import type { Exec } from './exec.js'
import { createIptablesBackend, type Variant } from './iptables.js'
import type { RuleBackend } from './types.js'

const targetsOf = (plan: Plan): FamilyTarget[] => plan.families.map(p => ({ family: p.family, desired: renderState(p) }))

const ruleCount = (target: FamilyTarget): number => [...target.desired.chains.values()].reduce((sum, rules) => sum + rules.length, 0)

/** `ipv4Saved` is iptables-save text already read while choosing the variant, so it is not read twice. */
export const createIptablesRules = (exec: Exec, variant: Variant, ipv4Saved?: string): RuleBackend => {
  const tables = createIptablesBackend(exec, variant)
  return {
    name: tables.name,
    apply: async plan => {
      const targets = targetsOf(plan)
      const outcomes = await applyFamilies(tables, targets, ipv4Saved)
      return targets.map((t, i) => ({ scope: t.family, rules: ruleCount(t), where: [...t.desired.chains.keys()].join(', '), changed: outcomes[i]?.changed ?? false }))
    },
    readBack: plan =>
      Promise.all(targetsOf(plan).map(async ({ family, desired }) => ({ scope: family, drift: compareState(desired, await readOwned(tables, family)) }))),
    clean: async plan => {
      const lines: string[] = []
      for (const { family } of targetsOf(plan)) {
        const existing = await readOwned(tables, family)
        const count = existing.jumps.length + existing.chains.size
        if (count > 0) await tables.restore(family, renderTransaction(EMPTY_STATE, existing))
        lines.push(`${family}: ${count === 0 ? 'nothing of ours was there' : `removed ${existing.chains.size} chains and ${existing.jumps.length} jumps`}`)
      }
      return lines
    },
  }
}
