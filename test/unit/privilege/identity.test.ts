import t from 'tap'
import { findNetClsMount } from '../../../src/cgroup/net-cls.js'
import { renderEnvoyConfig } from '../../../src/commands/envoy-config.js'
import { ConfigError, PrivilegeError } from '../../../src/errors.js'
import { resolveIdentity, type PasswdEntry } from '../../../src/privilege/identity.js'
import { setprivArgs } from '../../../src/privilege/setpriv.js'
import { describeStatus, hasCapability, parseStatus } from '../../../src/privilege/status.js'
import { parseAgentSettings, parseClassifierSettings, parseSettings } from '../../../src/settings/parse.js'

const USERS: PasswdEntry[] = [
  { name: 'envoy', uid: 1337, gid: 1337 },
  { name: 'root', uid: 0, gid: 0 },
  { name: 'proxy', uid: 2000, gid: 2001 },
]
const lookup = (user: string | number): PasswdEntry | undefined => USERS.find(u => u.name === user || u.uid === user)

t.test('the proxy identity: by UID or name, never root', async t => {
  const settings = parseSettings({})
  t.same(resolveIdentity(settings, parseAgentSettings({}), lookup), { uid: 1337, gid: 1337, groups: [1337], name: 'envoy' })
  t.same(
    resolveIdentity(settings, parseAgentSettings({ ISTIO_PROXY_USER: 'proxy' }), lookup),
    { uid: 2000, gid: 2001, groups: [2001], name: 'proxy' },
    'a named user: its primary GID only, never the group database',
  )
  t.same(
    resolveIdentity(settings, parseAgentSettings({ ISTIO_PROXY_GROUPS: '42, 1337,7' }), lookup).groups,
    [1337, 42, 7],
    'ISTIO_PROXY_GROUPS adds exactly its groups',
  )
  t.same(
    resolveIdentity(settings, parseAgentSettings({ ISTIO_PROXY_USER: '4242' }), lookup),
    { uid: 4242, gid: 4242, groups: [4242], name: undefined },
    'no passwd entry: its own GID',
  )
  t.same(
    resolveIdentity(parseSettings({ ISTIO_PROXY_GID: '7' }), parseAgentSettings({ ISTIO_PROXY_USER: '4242' }), lookup).gid,
    7,
    'ISTIO_PROXY_GID wins',
  )
  t.throws(() => resolveIdentity(settings, parseAgentSettings({ ISTIO_PROXY_USER: 'root' }), lookup), PrivilegeError)
  t.throws(() => resolveIdentity(settings, parseAgentSettings({ ISTIO_PROXY_USER: 'nobody-here' }), lookup), /does not exist/)
})

t.test('setpriv: exactly no capability, or exactly CAP_NET_ADMIN, and no_new_privs', async t => {
  t.same(setprivArgs({ uid: 1337, gid: 1337, groups: [1337], name: undefined }, false), [
    '--reuid=1337',
    '--regid=1337',
    '--groups=1337',
    '--inh-caps=-all',
    '--ambient-caps=-all',
    '--bounding-set=-all',
    '--no-new-privs',
    '--',
  ])
  const mark = setprivArgs({ uid: 1337, gid: 1337, groups: [1337, 42], name: 'envoy' }, true)
  t.ok(mark.includes('--groups=1337,42'))
  t.notOk(mark.includes('--init-groups'), 'the group database is never asked')
  t.same(
    mark.filter(a => a.includes('caps') || a.includes('bounding')),
    ['--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin'],
  )
})

t.test('/proc status parsing', async t => {
  const status = parseStatus(
    'Name:\tx\nUid:\t1337\t1337\t1337\t1337\nGid:\t1\t2\t3\t4\nGroups:\t1337 \nCapEff:\t0000000000001000\nCapAmb:\t0000000000001000\nNoNewPrivs:\t1\n',
  )
  t.same(status.uids, [1337, 1337, 1337, 1337])
  t.same(status.gids, [1, 2, 3, 4])
  t.same(status.groups, [1337])
  t.ok(hasCapability(status.capEff, 12))
  t.notOk(hasCapability(status.capEff, 21))
  t.equal(status.capBnd, 0n, 'a missing field is an empty set')
  t.ok(status.noNewPrivs)
  t.equal(
    describeStatus(
      parseStatus('Uid:\t1337\t1337\t1337\t1337\nGid:\t7\t7\t7\t7\nGroups:\t7 42\nCapEff:\t0000000000001001\nCapBnd:\t0000000000001000\n'),
    ),
    'uid 1337/1337/1337/1337; gid 7/7/7/7; groups 7,42; capabilities effective net_admin,0x1, permitted none, inheritable none, ambient none, bounding net_admin; no_new_privs not set',
  )
})

t.test('the net_cls mount is found by its super options, not its path', async t => {
  const mountinfo = [
    '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
    '35 31 0:32 / /sys/fs/cgroup/net_cls_lookalike rw,relatime - cgroup cgroup rw,memory',
    '99 23 0:50 / /tmp/my\\040cls rw,relatime shared:5 - cgroup net_cls rw,net_cls,net_prio',
  ].join('\n')
  t.equal(findNetClsMount(mountinfo), '/tmp/my cls')
  t.equal(findNetClsMount(mountinfo.split('\n').slice(0, 2).join('\n')), undefined)
})

t.test('envoy-config carries the configured mark', async t => {
  const yaml = renderEnvoyConfig(parseSettings({ ISTIO_SO_MARK: '0x10/0xf0' }))
  t.match(yaml, /level: 1 +# SOL_SOCKET\n +name: 36 +# SO_MARK\n +int_value: 16\n +state: STATE_PREBIND/)
  const json = JSON.parse(renderEnvoyConfig(parseSettings({ ISTIO_SO_MARK: '7', ISTIO_LOG_FORMAT: 'json' })))
  t.same(json.upstream_bind_config.socket_options[0], {
    description: 'sidecar-redirect: SO_MARK for the mark method',
    level: 1,
    name: 36,
    int_value: 7,
    state: 'STATE_PREBIND',
  })
})

t.test('agent and classifier settings refuse bad values, quoting the whole value and naming the variable', async t => {
  t.same(parseClassifierSettings({ ISTIO_CLASSIFIER_UIDS: '1337, 1338' }).allowedUids, [1337, 1338])
  const rows: [typeof parseAgentSettings | typeof parseClassifierSettings, string, string][] = [
    [parseAgentSettings, 'ISTIO_PROXY_USER', '0'],
    [parseAgentSettings, 'ISTIO_PROXY_USER', 'bad user'],
    [parseAgentSettings, 'ISTIO_PROXY_USER', '-1'],
    [parseAgentSettings, 'ISTIO_PROXY_GROUPS', '0'],
    [parseAgentSettings, 'ISTIO_PROXY_GROUPS', '42,0'],
    [parseAgentSettings, 'ISTIO_PROXY_GROUPS', 'disk'],
    [parseAgentSettings, 'ISTIO_PROXY_GROUPS', '42,'],
    [parseAgentSettings, 'ISTIO_AGENT_RESTART', 'always'],
    [parseAgentSettings, 'ISTIO_PROXY_NOFILE', '10'],
    [parseAgentSettings, 'ISTIO_PROXY_NOFILE', 'many'],
    [parseAgentSettings, 'ISTIO_NET_CLS_ROOT', 'relative/path'],
    [parseAgentSettings, 'ISTIO_CLASSIFIER_SOCKET', 'relative.sock'],
    [parseClassifierSettings, 'ISTIO_CLASSIFIER_SOCKET', 'relative.sock'],
    [parseClassifierSettings, 'ISTIO_CLASSIFIER_UIDS', '0'],
    [parseClassifierSettings, 'ISTIO_CLASSIFIER_UIDS', '1337,'],
    [parseClassifierSettings, 'ISTIO_CLASSIFIER_UIDS', 'envoy'],
    [parseClassifierSettings, 'ISTIO_CLASSIFIER_CLASSIDS', '0'],
    [parseClassifierSettings, 'ISTIO_CLASSIFIER_CLASSIDS', '10:1'],
  ]
  for (const [parse, variable, value] of rows) {
    const error = t.throws(() => parse({ [variable]: value }), ConfigError) as ConfigError
    t.equal(error.variable, variable)
    t.equal(error.value, value, `${variable}=${value}`)
  }
})
