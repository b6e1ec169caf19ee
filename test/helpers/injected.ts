// What the injected-pod tests start from: a Deployment as a user writes it (an HTTP app, nothing of ours), and
// `entrypoint inject` run on it as a user runs it, the result's pod template made a Pod to play.
import { writeFileSync } from 'node:fs'
import { execa } from 'execa'
import { parse } from 'yaml'
import { HTTP_SERVER } from './http-peers.js'
import type { Obj } from './kubelet.js'
import { IMAGE, ROOT } from './podman.js'

/** The Deployment a user writes: an HTTP app, nothing of ours. */
export const deployment = (name: string, image = IMAGE): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        containers: [
          {
            name: 'app',
            image,
            imagePullPolicy: 'Never',
            command: ['/usr/local/bin/node', '-e', HTTP_SERVER],
            env: [
              { name: 'LABEL', value: 'app' },
              { name: 'PORT', value: '8080' },
            ],
            securityContext: { runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          },
        ],
      },
    },
  },
})

/** `entrypoint inject` as a user runs it, on a file; the Deployment's pod template back as a Pod named `pod`. */
export const injectToPod = async (dir: string, object: Obj, env: Record<string, string>, pod: string): Promise<Obj> => {
  const file = `${dir}/${pod}.yaml`
  writeFileSync(file, JSON.stringify(object))
  const result = await execa(process.execPath, [`${ROOT}dist/cli.mjs`, 'inject', '-f', file], {
    env: { PATH: process.env['PATH'], ...env },
    extendEnv: false,
  })
  const injected = parse(result.stdout) as Obj
  const template = injected['spec'].template
  return { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name: pod }, spec: template.spec }
}
