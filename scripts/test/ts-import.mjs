// `node --import=./scripts/test/ts-import.mjs file.ts`: runs TypeScript through ts-hooks.mjs (esbuild, no type check).
import { register } from 'node:module'

register('./ts-hooks.mjs', import.meta.url)
