import t from 'tap'
import { parseCidr } from '../../../src/settings/cidr.js'

t.test('CIDRs come out in the normal form iptables-save prints', async t => {
  const cases: [string, string | undefined][] = [
    ['169.254.169.254', '169.254.169.254/32'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['198.18.0.0/15', '198.18.0.0/15'],
    ['2001:DB8::1', '2001:db8::1/128'],
    ['2001:db8:0:0:0:0:0:1/64', '2001:db8::/64'],
    ['2001:db8:0:1:0:0:0:0/64', '2001:db8:0:1::/64'],
    // Expected forms checked against glibc's inet_ntop: the first longest zero run is compressed.
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1/128'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4/128'],
    ['0:0:1::', '0:0:1::/128'],
    ['::1:0:0:0', '::1:0:0:0/128'],
    ['::1', '::1/128'],
    ['::', '::/128'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4/128'],
    // IPv4-compatible: six zero words, then a non-zero one, print dotted too.
    ['::198.18.0.1', '::198.18.0.1/128'],
    ['0:0:0:0:0:0:c612:1', '::198.18.0.1/128'],
    ['::0.1.0.0', '::0.1.0.0/128'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6/128'],
    ['1.2.3.4/33', undefined],
    ['256.1.1.1', undefined],
    ['01.2.3.4', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4/', undefined],
    ['1.2.3.4/08', undefined],
    ['1.2.3.4/8/8', undefined],
    ['2001:db8::1::2', undefined],
    ['2001:db8:::1', undefined],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['1:2:3:4:5:6:7', undefined],
    ['2001:db8::/129', undefined],
    ['12345::', undefined],
    ['fe80::1%eth0', undefined],
    ['', undefined],
    ['example.com', undefined],
  ]
  for (const [input, expected] of cases) {
    const parsed = parseCidr(input)
    t.equal(parsed ? `${parsed.address}/${parsed.prefix}` : undefined, expected, input)
  }
})
