// Bundles the CLI into one file: loading one module instead of hundreds is most of an init container's start-up
// time (see bench/). Native addons stay outside the bundle and load from node_modules. The traffic peer is one
// self-contained file, so the demo can hand a copy to processes running as other users.
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { build } from 'esbuild'

// Chunk names change with their content: start empty, so no stale chunk is shipped.
rmSync('dist', { recursive: true, force: true })

const common = {
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'posix'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  // Less text to parse is a faster start; keepNames keeps error class names readable.
  minify: true,
  keepNames: true,
  sourcemap: 'linked',
  logLevel: 'warning',
}

await build({ ...common, entryPoints: { cli: 'src/bin.ts' }, splitting: true })
await build({ ...common, entryPoints: { peer: 'src/peer.ts' }, splitting: false })

// The CNI plugin runs on the host, which may have neither Node.js nor a libc we know: one static executable.
mkdirSync('dist/cni', { recursive: true })
const cc = spawnSync('cc', ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', 'dist/cni/sidecar-redirect', 'src/cni/forwarder.c'], {
  stdio: 'inherit',
})
if (cc.error || cc.status !== 0) {
  console.error(
    `build: could not compile the CNI plugin dist/cni/sidecar-redirect (${cc.error ? `cc: ${cc.error.code}` : `cc exited ${cc.status}`}): a C compiler with static libc is needed (Debian: apt-get install -y gcc libc6-dev)`,
  )
  process.exit(1)
}
