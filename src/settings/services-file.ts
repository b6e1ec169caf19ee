// Reads ISTIO_SERVICES_FILE in bounded time and memory, whatever the path names. A FIFO would block open() and
// read() forever, a device never ends, and a huge file was read whole (and split whole) before: so the file must
// be a regular file (a symlink to one is fine: ConfigMap volumes are symlinks), at most MAX_FILE_BYTES, with lines
// of at most MAX_LINE_BYTES and at most MAX_SERVICES entries, parsed line by line from 64 KiB reads.

import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { StringDecoder } from 'node:string_decoder'
import { ConfigError, FileConfigError } from '../errors.js'
import { parseServiceLine, type Located } from './services.js'

export const MAX_FILE_BYTES = 64 * 1024 * 1024
export const MAX_LINE_BYTES = 4096
// A parsed entry costs far more memory than its line, so entries are bounded too: well above the 100,000 services
// bench/scale.mjs runs init with.
export const MAX_SERVICES = 262_144
const CHUNK_BYTES = 64 * 1024

const ACCEPTED = 'a regular file of services, one CIDR[:port[-port]] per line'

const kindOf = (stat: {
  isDirectory(): boolean
  isFIFO(): boolean
  isCharacterDevice(): boolean
  isBlockDevice(): boolean
  isSocket(): boolean
}): string =>
  stat.isDirectory()
    ? 'a directory'
    : stat.isFIFO()
      ? 'a FIFO'
      : stat.isCharacterDevice()
        ? 'a character device'
        : stat.isBlockDevice()
          ? 'a block device'
          : stat.isSocket()
            ? 'a socket'
            : 'not a regular file'

/** Opens a regular file of at most MAX_FILE_BYTES, or throws what `refuse` makes of why not. */
// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before fstat could refuse it.
export const openRegular = async (path: string, refuse: (why: string) => ConfigError): Promise<FileHandle> => {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY).catch((error: NodeJS.ErrnoException) => {
    throw refuse(`it cannot be opened: ${error.code ?? error.message}`)
  })
  const stat = await handle.stat()
  const why = !stat.isFile()
    ? `it is ${kindOf(stat)}`
    : stat.size > MAX_FILE_BYTES
      ? `it is ${stat.size} bytes, over the ${MAX_FILE_BYTES}-byte limit`
      : undefined
  if (why !== undefined) {
    await handle.close()
    throw refuse(why)
  }
  return handle
}

/** asFileError runs a parse of a file's text, so that a refusal quoting it is a FileConfigError. */
export const asFileError = <T>(parse: () => T): T => {
  try {
    return parse()
  } catch (error) {
    if (error instanceof ConfigError && !(error instanceof FileConfigError)) throw new FileConfigError(error.variable, error.value, error.accepted)
    throw error
  }
}

/** readServicesFile returns the file's services; throws ConfigError naming the file and why it was refused. */
export const readServicesFile = async (path: string, variable: string): Promise<Located[]> => {
  const refuse = (why: string): ConfigError => new FileConfigError(variable, path, `${ACCEPTED} (${why})`)
  const handle = await openRegular(path, refuse)
  const found: Located[] = []
  const decoder = new StringDecoder('utf8')
  const buffer = Buffer.alloc(CHUNK_BYTES)
  let partial = ''
  let number = 0
  let total = 0
  const take = (line: string): void => {
    number += 1
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) throw refuse(`line ${number} is longer than ${MAX_LINE_BYTES} bytes`)
    const located = asFileError(() => parseServiceLine(line, `${path} line ${number}: `, variable))
    if (located !== undefined && found.push(located) > MAX_SERVICES) throw refuse(`it lists more than ${MAX_SERVICES} services`)
  }
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null)
      if (bytesRead === 0) break
      // The size was checked at open, but a file may grow (or report size 0, as /proc files do) as it is read.
      total += bytesRead
      if (total > MAX_FILE_BYTES) throw refuse(`it has more than the ${MAX_FILE_BYTES}-byte limit`)
      const lines = (partial + decoder.write(buffer.subarray(0, bytesRead))).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) take(line)
      // A line with no end yet is bounded too, or one endless line would be buffered whole.
      if (Buffer.byteLength(partial) > MAX_LINE_BYTES) throw refuse(`line ${number + 1} is longer than ${MAX_LINE_BYTES} bytes`)
    }
    take(partial + decoder.end())
  } finally {
    await handle.close()
  }
  return found
}
