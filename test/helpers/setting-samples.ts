// Sample values for the chart's settings values (src/settings/chart.ts), shared by the unit test that sets the
// schema against the CLI and the chart test that renders them with Helm.
import { CHART_VALUES } from '../../src/settings/chart.js'
import { OPTIONS } from '../../src/settings/options.js'
import type { OptionSettings } from '../../src/settings/types.js'

// Values of text and list settings, which the schema leaves to the CLI: good ones (the first is the one the chart
// test renders, so not the default) and bad ones.
export const TEXT_SAMPLES: Partial<Record<keyof OptionSettings, { good: unknown[]; bad: unknown[] }>> = {
  mark: { good: ['0x100/0xf00', '16'], bad: ['0', '0x1/0x0', '0x10/0x1', 'one'] },
  netClsId: { good: ['0x100002', '1048577'], bad: ['0', '0x1ffffffff', 'ten:one'] },
  inboundPorts: { good: [[80, '9000-9100'], ['*'], []], bad: [['80-'], [0], [70000], ['*', 80]] },
  inboundExcludePorts: { good: [[15021], ['1-1024']], bad: [['x'], [65536], ['9-1']] },
  outboundExcludePorts: { good: [[22, '6000-6100']], bad: [[-1], ['22,']] },
  outboundIncludeCidrs: {
    good: [['198.18.0.0/15', '2001:db8::/32'], ['*'], []],
    bad: [['10.0.0.0/33'], ['198.18.0.256/32'], ['*', '198.18.0.0/15']],
  },
  outboundExcludeCidrs: { good: [['169.254.169.254/32', '2001:db8::1']], bad: [['169.254.169.254/33'], ['fe80::/129'], ['host']] },
  excludeInterfaces: { good: [['eth1', 'wg0']], bad: [['eth 1'], ['a-name-longer-than-15']] },
  resolvConf: { good: ['/etc/resolv.other'], bad: ['etc/resolv.conf', ''] },
  dnsServers: { good: [['198.18.0.53', '2001:db8::53']], bad: [['198.18.0.0/24'], ['dns.example']] },
  services: { good: [['198.18.0.10:80', '[2001:db8::1]:443', '198.18.1.0/24']], bad: [['198.18.0.10:0'], ['[2001:db8::1']] },
  servicesFile: { good: ['/etc/sidecar-redirect/services'], bad: [] },
  acceptBpfPrograms: { good: [['0123456789abcdef'], ['*']], bad: [['0123456789abcde'], ['xyz']] },
}

/** One good value of every setting that is not its default, as values.yaml would hold it; together they make sense. */
export const renderSample = (key: keyof OptionSettings): unknown => {
  const { form } = CHART_VALUES[key]
  switch (form.kind) {
    case 'integer':
      // The largest, so a value Helm reads as a float must still be written whole.
      return form.max
    case 'choice':
      // Not mark or cgroup: CNI mode refuses the methods that need a capability in the pod.
      return key === 'outboundMethod' ? 'explicit' : form.choices.find(c => c !== OPTIONS[key].default)
    case 'boolean':
      return OPTIONS[key].default !== 'true'
    default:
      return TEXT_SAMPLES[key]?.good[0]
  }
}
