// ISTIO_DNS_CAPTURE=resolv-conf captures DNS to the nameservers the pod's resolver asks: the `nameserver` lines of
// its resolv.conf (glibc's format: one address per line, `#` or `;` starts a comment), read once at init. A file
// that cannot be read, or lists no nameserver, is refused: capturing nothing while the setting says DNS is captured
// would be a silent failure.

import { ConfigError, FileConfigError } from '../errors.js'
import { parseCidr } from './cidr.js'
import { asFileError, openRegular } from './services-file.js'
import type { Cidr } from './types.js'

// A resolv.conf is a few lines; anything this large is not one.
const MAX_BYTES = 64 * 1024
const ACCEPTED = 'a resolv.conf with at least one "nameserver ADDRESS" line (IPv4, or IPv6 without a zone)'

/** parseNameservers reads the nameserver addresses of resolv.conf text, each once, in order; throws naming the line. Pure. */
export const parseNameservers = (text: string, path: string, variable: string): Cidr[] => {
  const found: Cidr[] = []
  for (const [i, line] of text.split('\n').entries()) {
    const words = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/)
    if (words[0] !== 'nameserver') continue
    const cidr = words[1] === undefined || words[1].includes('/') ? undefined : parseCidr(words[1])
    if (cidr === undefined) throw new ConfigError(variable, path, `${ACCEPTED} (line ${i + 1} is ${JSON.stringify(line)})`)
    if (!found.some(c => c.address === cidr.address)) found.push(cidr)
  }
  if (found.length === 0) throw new ConfigError(variable, path, `${ACCEPTED} (it has none)`)
  return found
}

/** readNameservers reads ISTIO_RESOLV_CONF's nameservers; throws ConfigError naming `variable`, the file and why. */
export const readNameservers = async (path: string, variable: string): Promise<Cidr[]> => {
  const refuse = (why: string): ConfigError => new FileConfigError(variable, path, `${ACCEPTED} (${why})`)
  const handle = await openRegular(path, refuse)
  try {
    const buffer = Buffer.alloc(MAX_BYTES + 1)
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
    if (bytesRead > MAX_BYTES) throw refuse(`it is over ${MAX_BYTES} bytes`)
    return asFileError(() => parseNameservers(buffer.subarray(0, bytesRead).toString('utf8'), path, variable))
  } finally {
    await handle.close()
  }
}
