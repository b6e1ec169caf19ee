// PATHs that change which tools init finds, for tests of what it does when a tool refuses or is missing.
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'

/** A fresh directory, removed when the test process exits. */
const scratch = (prefix: string): string => {
  const dir = mkdtempSync(`${tmpdir()}/${prefix}`)
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A PATH whose ip6tables restore tools refuse every payload, as a kernel without ip6 nat would. */
export const refusingIpv6Path = (): string => {
  const dir = scratch('sr-refuse-')
  for (const variant of ['nft', 'legacy']) {
    const file = `${dir}/ip6tables-${variant}-restore`
    writeFileSync(file, '#!/bin/sh\ncat >/dev/null\necho "ip6tables-restore: line 3 failed" >&2\nexit 1\n')
    chmodSync(file, 0o755)
  }
  return `${dir}:${process.env['PATH'] ?? ''}`
}

/** A PATH on which `nft -f` refuses every transaction, as a kernel without nf_tables nat would; reads still work. */
export const refusingNftPath = (): string => {
  const dir = scratch('sr-refuse-nft-')
  const real =
    (process.env['PATH'] ?? '')
      .split(':')
      .map(d => `${d}/nft`)
      .find(p => existsSync(p)) ?? 'nft'
  const refuse = 'cat >/dev/null; echo "Error: Could not process rule: Operation not supported" >&2; exit 1'
  writeFileSync(`${dir}/nft`, `#!/bin/sh\nif [ "$1" = "-f" ]; then ${refuse}; fi\nexec ${real} "$@"\n`)
  chmodSync(`${dir}/nft`, 0o755)
  return `${dir}:${process.env['PATH'] ?? ''}`
}

/** A new directory of symlinks to every file in `dirs` whose name `hide` does not match; the first of a name wins. */
export const linksWithout = (dirs: readonly string[], hide: RegExp): string => {
  const dir = scratch('sr-links-')
  for (const from of dirs) {
    let names: string[]
    try {
      names = readdirSync(from)
    } catch {
      continue
    }
    for (const name of names.filter(n => !hide.test(n))) {
      try {
        symlinkSync(`${from}/${name}`, `${dir}/${name}`)
      } catch {
        // An earlier directory already gave this name, as a PATH lookup would.
      }
    }
  }
  return dir
}

/** A PATH of one directory holding every program on the current PATH except those `hide` matches. */
export const pathWithout = (hide: RegExp): string => linksWithout((process.env['PATH'] ?? '').split(':').filter(Boolean), hide)
