// An address on lo beside the rules: Istio's mode puts ::6/128 there when it captures IPv6, so the proxy can bind it
// for inbound passthrough to the app (IPv6's loopback is ::1/128 alone, where IPv4 has all of 127.0.0.0/8). Added
// after the rules apply (an address that exists is left as it is), read back with them, and never removed: nothing
// tells an address we added from one that was there, and it matches no rule unless the proxy binds it.

import { ApplyError, EnvironmentError } from '../errors.js'
import { CommandFailed, failedFor, isNotInstalled, type Exec } from '../exec/exec.js'
import { runIproute } from './iproute/classify.js'
import type { Cidr } from '../settings/types.js'
import { formatCidr } from '../settings/cidr.js'
import type { RuleBackend } from './types.js'

const flag = (cidr: Cidr): string => (cidr.family === 'ipv4' ? '-4' : '-6')

const ip = async (exec: Exec, args: string[]): Promise<string> => {
  try {
    return (await runIproute(exec, 'ip', args)).stdout
  } catch (error) {
    if (isNotInstalled(error))
      throw new EnvironmentError('the address on lo is added with ip, which is not installed (the iproute2 package)', { cause: error })
    throw error
  }
}

const present = async (exec: Exec, cidr: Cidr): Promise<boolean> =>
  (await ip(exec, ['-o', flag(cidr), 'addr', 'show', 'dev', 'lo'])).split('\n').some(line => line.split(/\s+/).includes(formatCidr(cidr)))

/** withLoAddress adds `cidr` to lo after the inner backend applies, and reads it back with the rules. */
export const withLoAddress = (inner: RuleBackend, exec: Exec, cidr: Cidr): RuleBackend => ({
  name: inner.name,
  classify: inner.classify,
  // What plan prints for it is the mode's own (istio-iptables prints the `ip addr add` it implies).
  render: plan => inner.render(plan),
  apply: async plan => {
    const { applied, known } = await inner.apply(plan)
    const there = await present(exec, cidr)
    if (!there) {
      try {
        await ip(exec, [flag(cidr), 'addr', 'add', formatCidr(cidr), 'dev', 'lo'])
      } catch (error) {
        if (!failedFor(error, 'exists')) {
          throw new ApplyError(
            `adding ${formatCidr(cidr)} to lo was refused: ${error instanceof CommandFailed ? error.stderr.trim() : String(error)}`,
            {
              cause: error,
            },
          )
        }
      }
    }
    return { applied: [...applied, { scope: 'lo', count: 1, unit: 'addresses', where: `address ${formatCidr(cidr)} on lo`, changed: !there }], known }
  },
  read: async (plan, known) => {
    const [reads, there] = await Promise.all([inner.read(plan, known), present(exec, cidr)])
    return { ...reads, lo: { address: formatCidr(cidr), present: there } }
  },
  clean: plan => inner.clean(plan),
})
