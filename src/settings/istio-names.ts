// Istio's own names (istio-init / istio-iptables and pilot-agent) for what our settings do. Ours share the ISTIO_
// prefix, so a variable of theirs in a pod's env looks like it should work here; where the name differs from ours
// it would be ignored without a word and the capture scope would quietly differ. One table, so that the commands
// that warn about them and a command that honours Istio's names read the same list.

/** Istio's variable name -> our setting that does that, or what differs when there is none. */
export const ISTIO_NAMES: Readonly<Record<string, { readonly ours?: string; readonly note?: string }>> = {
  ISTIO_SERVICE_CIDR: { ours: 'ISTIO_OUTBOUND_INCLUDE_CIDRS' },
  ISTIO_SERVICE_EXCLUDE_CIDR: { ours: 'ISTIO_OUTBOUND_EXCLUDE_CIDRS' },
  ISTIO_LOCAL_EXCLUDE_PORTS: { ours: 'ISTIO_INBOUND_EXCLUDE_PORTS' },
  ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE: { ours: 'ISTIO_OUTBOUND_EXCLUDE_PORTS' },
  ISTIO_OUTBOUND_PORTS: { note: 'outbound capture is by address here (ISTIO_OUTBOUND_INCLUDE_CIDRS), not by port' },
  ISTIO_META_DNS_CAPTURE: { ours: 'ISTIO_DNS_CAPTURE' },
  ISTIO_META_DNS_AUTO_ALLOCATE: { note: 'no equivalent: DNS answers come from the proxy' },
  ISTIO_META_INTERCEPTION_MODE: { ours: 'ISTIO_INBOUND_INTERCEPTION_MODE' },
  ISTIO_OUTBOUND_OWNER_GROUPS: { ours: 'ISTIO_PROXY_GID (traffic of that GID is not captured)' },
  ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: { ours: 'ISTIO_PROXY_GID (traffic of that GID is not captured)' },
  ISTIO_KUBE_VIRT_INTERFACES: { note: 'no equivalent: no interface is treated as outbound' },
  ISTIO_DROP_INBOUND: { note: 'no equivalent: inbound TCP is captured or passed, never dropped' },
}

export interface ForeignName {
  readonly variable: string
  readonly message: string
}

/** foreignNames lists the variables of env that are Istio's names, not ours, in name order, each with one line. Pure. */
export const foreignNames = (env: Readonly<Record<string, string | undefined>>): ForeignName[] =>
  Object.keys(env)
    .filter(name => Object.hasOwn(ISTIO_NAMES, name))
    .sort()
    .map(variable => {
      const { ours, note } = ISTIO_NAMES[variable]!
      return { variable, message: `${variable} is Istio's name, not a setting of ours: it has no effect here; ${ours ? `use ${ours}` : note}` }
    })
