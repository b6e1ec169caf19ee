// Module hooks that run the TypeScript tests and sources without a type checker: each .ts file is transformed alone
// by esbuild (already the build's bundler), types stripped, with an inline source map so stack traces, failures and
// coverage name .ts lines. Type errors are `npm run typecheck`'s (npm test runs it first). Registered by
// ts-import.mjs; the tap configs pass that to every test process.
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { transform } from 'esbuild'

const TS = /\.(m?)ts$/
// The project's compiler options that change emitted code (class fields, kept imports), from its own tsconfig.
const { compilerOptions } = JSON.parse(readFileSync(new URL('../../tsconfig.json', import.meta.url), 'utf8'))
const target = `node${process.versions.node}`

// `import './x.js'` in a .ts file names ./x.ts, as tsc's NodeNext resolution reads it; where there is no such
// .ts file the import is left to Node as written.
export const resolve = async (specifier, context, nextResolve) => {
  if (context.parentURL && TS.test(context.parentURL) && /^\.{1,2}\/.*\.m?js$/.test(specifier)) {
    try {
      return await nextResolve(specifier.replace(/js$/, 'ts'), context)
    } catch (error) {
      if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error
    }
  }
  return nextResolve(specifier, context)
}

export const load = async (url, context, nextLoad) => {
  if (!url.startsWith('file:') || !TS.test(url)) return nextLoad(url, context)
  const path = fileURLToPath(url)
  const { code } = await transform(await readFile(path, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    target,
    sourcefile: path,
    sourcemap: 'inline',
    tsconfigRaw: { compilerOptions },
  })
  return { format: 'module', source: code, shortCircuit: true }
}
