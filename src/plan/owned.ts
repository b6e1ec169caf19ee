// The only place that names what the kernel sees of us: chain names and the comment tag on every rule. Read-back,
// verify and clean recognise our rules by these and nothing else.

export const CHAIN_PREFIX = 'SIDECAR_'
export const INBOUND_CHAIN = `${CHAIN_PREFIX}INBOUND`
export const OUTBOUND_CHAIN = `${CHAIN_PREFIX}OUTBOUND`

const COMMENT_PREFIX = 'sidecar-redirect/'

/** Our service sets: ipset names (global per namespace, so prefixed like our chains) and names in our nft table. */
export const ipsetName = (family: 'ipv4' | 'ipv6', withPorts: boolean): string => `${CHAIN_PREFIX}SVC${family === 'ipv4' ? 4 : 6}${withPorts ? '_PORTS' : ''}`
export const nftSetName = (family: 'ipv4' | 'ipv6', withPorts: boolean): string => `services${family === 'ipv4' ? 4 : 6}${withPorts ? '_ports' : ''}`

export const commentFor = (purpose: string): string => `${COMMENT_PREFIX}${purpose}`

export const isOwnedChain = (name: string): boolean => name.startsWith(CHAIN_PREFIX)

/** A rule line in a built-in chain is ours if it jumps to one of our chains or carries our tag. */
export const isOwnedRuleLine = (line: string): boolean => {
  const target = / -j (\S+)/.exec(line)?.[1]
  return (target !== undefined && isOwnedChain(target)) || line.includes(`--comment "${COMMENT_PREFIX}`)
}
