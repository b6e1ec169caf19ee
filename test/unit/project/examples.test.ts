// The examples' app containers are what users copy: each drops NET_RAW (a packet socket sends TCP no rule sees)
// and never adds NET_ADMIN (it changes the rules), as docs/security.md says a captured app must.
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parseAllDocuments } from 'yaml'

const DIR = new URL('../../../examples/', import.meta.url)

interface Container {
  readonly name: string
  readonly securityContext?: { readonly capabilities?: { readonly add?: string[]; readonly drop?: string[] } }
}

for (const file of readdirSync(DIR).filter(f => f.endsWith('.yaml'))) {
  t.test(`${file}: the app containers drop NET_RAW and have no NET_ADMIN`, async t => {
    const pods = parseAllDocuments(readFileSync(new URL(file, DIR), 'utf8'))
      .map(d => d.toJSON() as { kind?: string; spec?: { containers?: Container[] } })
      .filter(d => d.kind === 'Pod')
    t.ok(pods.length > 0, 'a pod')
    for (const pod of pods) {
      const apps = (pod.spec?.containers ?? []).filter(c => c.name === 'app')
      t.ok(apps.length > 0, 'an app container')
      for (const app of apps) {
        const caps = app.securityContext?.capabilities ?? {}
        t.ok(caps.drop?.includes('ALL') || caps.drop?.includes('NET_RAW'), `${app.name}: drops NET_RAW`, { caps })
        t.notOk(
          caps.add?.some(c => c === 'NET_ADMIN' || c === 'NET_RAW'),
          `${app.name}: adds neither NET_ADMIN nor NET_RAW`,
          { caps },
        )
      }
    }
  })
}
