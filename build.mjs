// Bundles the CLI into one file: loading one module instead of hundreds is most of an init container's start-up
// time (see bench/). Native addons stay outside the bundle and load from node_modules. The traffic peer is one
// self-contained file, so the demo can hand a copy to processes running as other users.
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
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

// Node pays for every ES module it loads (resolve, read, link, a compile-cache entry), and esbuild's splitting gives
// each set of entries that reach a module its own chunk: the CLI's static graph, shared piecemeal with the commands
// loaded lazily, comes out as many small files. So every module loaded lazily also imports that whole graph (it is
// loaded already whenever they are): then all of it is reached by the same entries, and is one chunk. What this buys
// per start, against a plain split build, is measured in docs/performance.md (`PLAIN_SPLIT=1` builds without it).
// The imports go after the module's own text (imports are hoisted), so its lines keep their numbers in the map.
const STATIC_GRAPH = ['src/main.ts', 'src/io.ts'].map(file => `\nimport ${JSON.stringify(resolve(file))}`).join('')
const staticGraphInOneChunk = {
  name: 'static-graph-in-one-chunk',
  setup(b) {
    const lazy = new Set()
    b.onResolve({ filter: /^\./ }, async args => {
      if (args.kind !== 'dynamic-import' || args.pluginData === 'resolving') return undefined
      const found = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'resolving' })
      if (found.errors.length === 0) lazy.add(found.path)
      return found
    })
    b.onLoad({ filter: /\/src\/.*\.ts$/ }, async args =>
      lazy.has(args.path)
        ? { contents: (await readFile(args.path, 'utf8')) + STATIC_GRAPH, loader: 'ts', resolveDir: dirname(args.path) }
        : undefined,
    )
  },
}

await build({ ...common, entryPoints: { cli: 'src/bin.ts' }, splitting: true, plugins: process.env.PLAIN_SPLIT ? [] : [staticGraphInOneChunk] })
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
