// The iptables backends behind the RuleBackend interface: one restore per family (see apply.ts), read back with
// -save, cleaned by removing our chains and jumps family by family. The explicit method's service sets are ipsets,
// swapped in before the rules that match them.

import { ApplyError, EnvironmentError } from '../errors.js'
import { CHAIN_PREFIX, ipsetName } from '../plan/owned.js'
import { ipsetMembers, parseIpsetSave, renderIpsetSwap } from '../plan/render-ipset.js'
import { renderState, renderTransaction, EMPTY_STATE } from '../plan/render-iptables.js'
import type { Plan } from '../plan/types.js'
import { compareState, memberDiff } from '../verify/compare.js'
import { applyFamilies, readOwned, type FamilyTarget } from './apply.js'
import { CommandFailed, type Exec } from './exec.js'
import { createIptablesBackend, type Variant } from './iptables.js'
import type { RuleBackend } from './types.js'

const targetsOf = (plan: Plan): FamilyTarget[] => plan.families.map(p => ({ family: p.family, desired: renderState(p) }))

const ruleCount = (target: FamilyTarget): number => [...target.desired.chains.values()].reduce((sum, rules) => sum + rules.length, 0)

/** `ipv4Saved` is iptables-save text already read while choosing the variant, so it is not read twice. */
export const createIptablesRules = (exec: Exec, variant: Variant, ipv4Saved?: string): RuleBackend => {
  const tables = createIptablesBackend(exec, variant)
  const ipset = async (args: string[], input?: string): Promise<string> => {
    try {
      return (await exec('ipset', args, input)).stdout
    } catch (error) {
      if (error instanceof CommandFailed) throw new ApplyError(`ipset ${args[0]} refused: ${error.stderr.trim().split('\n')[0]}`, { cause: error })
      throw error
    }
  }
  return {
    name: tables.name,
    apply: async plan => {
      const sets = plan.families.flatMap(f => f.sets)
      if (sets.length > 0) await ipset(['restore'], renderIpsetSwap(sets))
      const targets = targetsOf(plan)
      const outcomes = await applyFamilies(tables, targets, ipv4Saved)
      const families = targets.map((t, i) => ({ scope: t.family, count: ruleCount(t), unit: 'rules' as const, where: [...t.desired.chains.keys()].join(', '), changed: outcomes[i]?.changed ?? false }))
      // Sets are swapped in every time: the swap is atomic and cheap, and a changed list must always land.
      const members = sets.reduce((sum, set) => sum + ipsetMembers(set).length, 0)
      return sets.length > 0 ? [...families, { scope: 'ipset', count: members, unit: 'members' as const, where: `${sets.length} sets`, changed: true }] : families
    },
    readBack: async plan => {
      const sets = plan.families.flatMap(f => f.sets)
      const live = sets.length > 0 ? parseIpsetSave(await ipset(['save'])) : new Map<string, string[]>()
      const setDrift = sets.flatMap(set => {
        const name = ipsetName(set.family, set.withPorts)
        const [want, have] = [ipsetMembers(set), live.get(name)]
        return have ? memberDiff(`set ${name}:`, want, have) : [`set ${name}: missing`]
      })
      const families = await Promise.all(
        targetsOf(plan).map(async ({ family, desired }) => ({ scope: family, drift: compareState(desired, await readOwned(tables, family)) })),
      )
      return sets.length > 0 ? [...families, { scope: 'ipset', drift: setDrift }] : families
    },
    clean: async plan => {
      const lines: string[] = []
      for (const { family } of targetsOf(plan)) {
        const existing = await readOwned(tables, family)
        const count = existing.jumps.length + existing.chains.size
        if (count > 0) await tables.restore(family, renderTransaction(EMPTY_STATE, existing))
        lines.push(`${family}: ${count === 0 ? 'nothing of ours was there' : `removed ${existing.chains.size} chains and ${existing.jumps.length} jumps`}`)
      }
      // Sets of an earlier explicit run go too, now that no rule matches them. Without ipset there are none.
      const saved = await exec('ipset', ['save']).then(
        r => r.stdout,
        (error: unknown) => {
          if (error instanceof EnvironmentError) return ''
          throw error
        },
      )
      const ours = [...parseIpsetSave(saved).keys()].filter(name => name.startsWith(`${CHAIN_PREFIX}SVC`))
      if (ours.length > 0) await ipset(['restore'], ours.map(name => `destroy ${name}`).join('\n').concat('\n'))
      if (ours.length > 0) lines.push(`ipset: removed ${ours.join(', ')}`)
      return lines
    },
  }
}
