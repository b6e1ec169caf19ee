// Bundles the CLI into one file: loading one module instead of hundreds is most of an init container's start-up
// time (see bench/). Native addons stay outside the bundle and load from node_modules.
import { build } from 'esbuild'

await build({
  entryPoints: { cli: 'src/bin.ts', peer: 'src/peer.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'posix'],
  // Less text to parse is a faster start; keepNames keeps error class names readable.
  minify: true,
  keepNames: true,
  sourcemap: 'linked',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
})
